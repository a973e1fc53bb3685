"""What every detector returns, and how alert ids are made.

A detector is a function ``detect_x(engine, settings) -> Detection``. It reads the workspace's
tables through the engine and returns three Arrow tables with the columns below; the runner
(``fundtrace.detect``) stores them in ``alerts``, ``alert_members`` and ``alert_evidence``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa

ALERT_SCHEMA = pa.schema(
    [
        ("alert_id", pa.string()),  # deterministic: see alert_id()
        ("typology", pa.string()),  # pass_through, chain, fan_in, fan_out, scatter_gather, ...
        ("score", pa.float64()),  # in [0, 1]
        ("start_ts", pa.timestamp("us")),
        ("end_ts", pa.timestamp("us")),
        ("amount", pa.decimal128(18, 4)),  # the money the pattern moved
        ("n_accounts", pa.int32()),
        ("n_txns", pa.int32()),
        ("summary", pa.string()),  # one plain sentence saying why
    ]
)
MEMBER_SCHEMA = pa.schema(
    [
        ("alert_id", pa.string()),
        ("bank", pa.string()),
        ("account", pa.string()),
        ("account_id", pa.uint64()),
        ("role", pa.string()),  # source | mule | hub | sink | member
        ("level", pa.int32()),  # mule level k (1 = first level), null when not layered
    ]
)
EVIDENCE_SCHEMA = pa.schema([("alert_id", pa.string()), ("txn_id", pa.string())])


@dataclass
class Detection:
    alerts: pa.Table
    members: pa.Table
    evidence: pa.Table

    @classmethod
    def empty(cls) -> Detection:
        return cls(ALERT_SCHEMA.empty_table(), MEMBER_SCHEMA.empty_table(), EVIDENCE_SCHEMA.empty_table())


def alert_id(typology: str, *parts: object) -> str:
    """A stable id from the typology and what identifies the hit (e.g. sorted member ids, window)."""
    digest = hashlib.sha256("\x1f".join([typology, *map(str, parts)]).encode()).hexdigest()[:16]
    return f"{typology}-{digest}"
