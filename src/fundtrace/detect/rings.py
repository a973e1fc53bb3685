"""Card-farm rings: accounts tied together by shared phone cards, bank cards, devices, ID cards, IPs.

A gang buys bank cards from their owners, binds them to bulk-registered phone cards and runs them
from a few phones and computers. In the bipartite graph of accounts and identifiers such a farm is
one connected component. Identifiers shared by too many accounts (a public IP, an office device) are
hubs and ignored, otherwise everything would be one component; the remaining components with at
least ``min_ring_size`` accounts are rings, scored by how much they look like a farm (see
``queries/detect/rings_score.sql`` for the formula): rare identifiers (Fraudar's 1/ln(d + 5)),
several identifier kinds, several banks, several holders, and - as a gate rather than one more
term - accounts opened together. Families and offices share phones, tablets, home and office IPs
just as much as a farm does; what they do not do is open their accounts in the same week, so a
ring opened years apart keeps at most a fifth of its sharing score and is never reported.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import pyarrow as pa

from fundtrace import queries
from fundtrace.detect.base import ALERT_SCHEMA, EVIDENCE_SCHEMA, MEMBER_SCHEMA, Detection, alert_id
from fundtrace.detect.components import connected_components
from fundtrace.engine.base import Engine
from fundtrace.schema import LINK_KINDS

__all__ = ["TYPOLOGY", "RingSettings", "detect_rings"]

log = logging.getLogger("fundtrace.detect.rings")
TYPOLOGY = "card_farm_ring"
# start_ts/end_ts of a ring whose members never transacted and have no opening date: the alerts
# table needs a time, and this one says plainly "unknown".
_UNKNOWN_TIME = datetime(1970, 1, 1)
_SHOWN_IDENTIFIERS = 5


@dataclass(frozen=True)
class RingSettings:
    """Card-farm ring detection (config section ``rings``)."""

    kinds: tuple[str, ...] = LINK_KINDS  # link kinds that count as shared identifiers
    use_account_phone: bool = True  # accounts.phone counts as a phone_card identifier
    use_holder_id: bool = False  # accounts.holder_id counts as an identifier (links one holder's accounts)
    max_accounts_per_identifier: int = 20  # more accounts than this: a hub (public IP, office device), ignored
    min_ring_size: int = 3  # fewest accounts in a ring
    max_ring_size: int = 200  # larger components are meshes of ordinary sharing, skipped
    open_window_days: float = 7.0  # accounts opened within this many days count as opened together
    min_score: float = 0.5  # rings scoring below this are not reported
    evidence_txns: int = 20  # earliest member transactions kept as evidence per ring (0: none)
    max_iterations: int = 50  # cap on connected-components hooking rounds

    def validate(self) -> list[tuple[str, str]]:
        problems = []
        unknown = [k for k in self.kinds if k not in LINK_KINDS]
        if unknown or not self.kinds:
            problems.append(("kinds", f"choose from {', '.join(LINK_KINDS)}; got {', '.join(self.kinds) or 'none'}"))
        if self.max_accounts_per_identifier < 2:
            problems.append(("max_accounts_per_identifier", "must be at least 2"))
        if self.min_ring_size < 2:
            problems.append(("min_ring_size", "must be at least 2"))
        if self.max_ring_size < self.min_ring_size:
            problems.append(("max_ring_size", "must be at least min_ring_size"))
        if not self.open_window_days >= 0:
            problems.append(("open_window_days", "must be 0 or more"))
        if not 0 <= self.min_score <= 1:
            problems.append(("min_score", "must be between 0 and 1"))
        if self.evidence_txns < 0:
            problems.append(("evidence_txns", "must be 0 or more"))
        if self.max_iterations < 1:
            problems.append(("max_iterations", "must be at least 1"))
        return problems


def detect_rings(engine: Engine, settings: RingSettings | None = None) -> Detection:
    """Find card-farm rings in the workspace's ``links`` (and ``accounts``) tables.

    Parameters
    ----------
    engine : Engine
        Runs the SQL over the workspace tables ``links``, ``accounts`` and ``transactions``.
    settings : RingSettings, optional
        Thresholds; the defaults when omitted.

    Returns
    -------
    Detection
        One alert per ring (typology ``card_farm_ring``), members with role ``member``, and up to
        ``evidence_txns`` of the members' earliest transactions as evidence. The summary names the
        shared identifiers, rarest first. The temporary table ``rs_out_shared`` (ring, kind, value,
        n_accounts, weight) and ``rs_rings`` (every signal of the score) stay on the engine for
        callers that want to store them.

    Notes
    -----
    Accounts are linked through identifier nodes, never by a self-join on shared identifiers, so an
    identifier used by d accounts costs d edges. Components come from
    :func:`fundtrace.detect.components.connected_components` (SQL on the engine). Cost: a few
    scans of ``links`` and ``accounts``, O(log n) rounds of joins on the shrinking contracted
    graph, one semi-join of ``transactions`` with the reported members.

    References
    ----------
    B. Hooi et al., "FRAUDAR: Bounding Graph Fraud in the Face of Camouflage", KDD 2016 (column
    weights 1/log(d + 5)).
    """
    settings = settings or RingSettings()
    graph = queries.get("rings_graph")
    engine.run_steps(
        graph.steps,
        graph.bind(
            {
                "kinds": ",".join(settings.kinds),
                "use_account_phone": settings.use_account_phone,
                "use_holder_id": settings.use_holder_id,
                "max_accounts_per_identifier": settings.max_accounts_per_identifier,
            }
        ),
    )
    rounds = connected_components(engine, "rg_edges", "rg_cc", max_iterations=settings.max_iterations)
    score = queries.get("rings_score")
    engine.run_steps(
        score.steps,
        score.bind(
            {
                "min_ring_size": settings.min_ring_size,
                "max_ring_size": settings.max_ring_size,
                "open_window_days": settings.open_window_days,
                "min_score": settings.min_score,
                "evidence_txns": settings.evidence_txns,
            }
        ),
    )
    _log_context(engine, settings, rounds)
    rings = engine.to_arrow("SELECT * FROM rs_rings ORDER BY ring").to_pylist()
    if not rings:
        return Detection.empty()
    members = defaultdict(list)
    for row in engine.to_arrow("SELECT ring, account_id, bank, account FROM rs_out_members").to_pylist():
        members[row["ring"]].append(row)
    shared = defaultdict(list)
    for row in engine.to_arrow(
        "SELECT ring, kind, value, n_accounts FROM rs_out_shared ORDER BY ring, n_accounts, kind, value"
    ).to_pylist():
        shared[row["ring"]].append(row)
    evidence = defaultdict(list)
    for row in engine.to_arrow("SELECT ring, txn_id FROM rs_out_evidence ORDER BY ring, txn_id").to_pylist():
        evidence[row["ring"]].append(row["txn_id"])

    alerts, member_rows, evidence_rows = [], [], []
    for ring in rings:
        ms = sorted(members[ring["ring"]], key=lambda m: m["account_id"])
        aid = alert_id(TYPOLOGY, *(m["account_id"] for m in ms))
        start = ring["start_ts"] or ring["first_opened"] or _UNKNOWN_TIME
        end = ring["end_ts"] or ring["last_opened"] or start
        alerts.append(
            {
                "alert_id": aid,
                "typology": TYPOLOGY,
                "score": round(min(1.0, max(0.0, ring["score"])), 6),
                "start_ts": start,
                "end_ts": end,
                "amount": Decimal(ring["amount"] or 0),
                "n_accounts": ring["n_accounts"],
                "n_txns": ring["n_txns"],
                "summary": _summary(ring, shared[ring["ring"]]),
            }
        )
        member_rows += [
            {"alert_id": aid, "bank": m["bank"], "account": m["account"], "account_id": m["account_id"],
             "role": "member", "level": None}
            for m in ms
        ]  # fmt: skip
        evidence_rows += [{"alert_id": aid, "txn_id": t} for t in evidence[ring["ring"]]]
    return Detection(
        pa.Table.from_pylist(alerts, schema=ALERT_SCHEMA),
        pa.Table.from_pylist(member_rows, schema=MEMBER_SCHEMA),
        pa.Table.from_pylist(evidence_rows, schema=EVIDENCE_SCHEMA),
    )


def _summary(ring: dict, shared: list[dict]) -> str:
    """One sentence: who, what they share (rarest first), and the signals behind the score."""
    n = ring["n_accounts"]
    shown = ", ".join(f"{s['kind']} {s['value']} ({s['n_accounts']} accounts)" for s in shared[:_SHOWN_IDENTIFIERS])
    more = f" and {len(shared) - _SHOWN_IDENTIFIERS} more" if len(shared) > _SHOWN_IDENTIFIERS else ""
    opened = ""
    if ring["first_opened"] is not None and ring["last_opened"] is not None:
        span = (ring["last_opened"] - ring["first_opened"]).total_seconds() / 86400
        opened = f", opened within {span:.0f} days" if span >= 1 else ", opened the same day"
    return (
        f"{n} accounts at {ring['n_banks']} bank{'s' if ring['n_banks'] != 1 else ''} "
        f"({ring['n_holders']} holder{'s' if ring['n_holders'] != 1 else ''}{opened}) share "
        f"{ring['n_identifiers']} identifier{'s' if ring['n_identifiers'] != 1 else ''} of "
        f"{ring['n_kinds']} kind{'s' if ring['n_kinds'] != 1 else ''}: {shown}{more}; "
        f"score {ring['score']:.2f} (holder diversity {ring['holder_factor']:.2f}, rare identifiers "
        f"{ring['s_link']:.2f}, kinds per account {ring['s_kinds']:.2f}, banks {ring['s_banks']:.2f}, "
        f"opened together {ring['s_opened']:.2f})."
    )


def _log_context(engine: Engine, settings: RingSettings, rounds: int) -> None:
    """Log how many identifiers were hubs and how many components were too large to be one farm."""
    row = engine.to_arrow(
        "SELECT (SELECT count(*) FROM rg_degree) AS shared, (SELECT count(*) FROM rg_idents) AS kept, "
        "(SELECT count(*) FROM rs_all) AS linked, "
        "(SELECT count(*) FROM (SELECT ring FROM rs_all GROUP BY ring HAVING count(*) > $max_ring_size) AS big) "
        "AS oversize, (SELECT count(*) FROM rs_rings) AS rings",
        {"max_ring_size": settings.max_ring_size},
    ).to_pylist()[0]
    log.info(
        "rings: %d shared identifiers, %d hubs ignored, %d linked accounts, %d components rounds, "
        "%d components above max_ring_size skipped, %d rings reported",
        row["shared"],
        row["shared"] - row["kept"],
        row["linked"],
        rounds,
        row["oversize"],
        row["rings"],
    )
