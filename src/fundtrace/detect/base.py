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


# --- helpers shared by the SQL detectors ------------------------------------------------------
# A detector's last SQL step yields one row per hit with these columns:
#   typology, akey (what identifies the hit), score, start_ts, end_ts, amount, summary,
#   members LIST(STRUCT(account_id UBIGINT, role VARCHAR, level INTEGER)), evidence LIST(VARCHAR).
# collect() turns such a table into a Detection; the alert id is computed in SQL exactly as alert_id().

ROLE_ORDER = ("mule", "hub", "source", "sink", "member")


def params_for(query, settings) -> dict:
    """The settings whose names are parameters of ``query`` (settings fields share the names)."""
    values = {p.name: getattr(settings, p.name) for p in query.params if hasattr(settings, p.name)}
    return {k: ",".join(v) if isinstance(v, tuple) else v for k, v in values.items()}


def alert_id_sql(typology: str, key: str) -> str:
    """SQL expression equal to :func:`alert_id` (typology, key) for column expressions."""
    return f"{typology} || '-' || left(sha256({typology} || chr(31) || {key}), 16)"


def collect(engine, table: str) -> Detection:
    """Read hit rows from ``table`` (see above) into a Detection with bank/account names filled in.

    A member listed twice in one alert keeps its most specific role (mule > hub > source > sink >
    member) and its lowest level.
    """
    if engine.count(table) == 0:
        return Detection.empty()
    aid = alert_id_sql("typology", "akey")
    order = "CASE m.role " + " ".join(f"WHEN '{r}' THEN {i}" for i, r in enumerate(ROLE_ORDER)) + " ELSE 9 END"
    engine.materialise(
        "dx_members",
        f"""SELECT alert_id, account_id, arg_min(role, ord) AS role, min(level) AS level FROM (
              SELECT {aid} AS alert_id, m.account_id AS account_id, m.role AS role, m.level AS level, {order} AS ord
              FROM (SELECT typology, akey, unnest(members) AS m FROM "{table}")
            ) GROUP BY alert_id, account_id""",
    )
    name_accounts(engine, "dx_members")
    alerts = engine.to_arrow(
        f"""SELECT {aid} AS alert_id, typology, CAST(least(1.0, greatest(0.0, score)) AS DOUBLE) AS score,
                   CAST(start_ts AS TIMESTAMP) AS start_ts, CAST(end_ts AS TIMESTAMP) AS end_ts,
                   CAST(amount AS DECIMAL(18, 4)) AS amount,
                   CAST(len(list_distinct(list_transform(members, lambda m: m.account_id))) AS INTEGER) AS n_accounts,
                   CAST(len(list_distinct(evidence)) AS INTEGER) AS n_txns, summary
            FROM "{table}" ORDER BY alert_id"""
    )
    members = engine.to_arrow(
        """SELECT m.alert_id, n.bank, n.account, CAST(m.account_id AS UBIGINT) AS account_id, m.role,
                  CAST(m.level AS INTEGER) AS level
           FROM dx_members m JOIN dx_names n USING (account_id)
           ORDER BY m.alert_id, m.account_id"""
    )
    evidence = engine.to_arrow(
        f"""SELECT DISTINCT {aid} AS alert_id, CAST(unnest(evidence) AS VARCHAR) AS txn_id FROM "{table}"
            ORDER BY 1, 2"""
    )
    return Detection(alerts.cast(ALERT_SCHEMA), members.cast(MEMBER_SCHEMA), evidence.cast(EVIDENCE_SCHEMA))


def _count(engine, sql: str) -> int:
    return engine.to_arrow(f"SELECT count(*) AS n FROM ({sql})").column(0)[0].as_py()


def name_accounts(engine, ids_table: str) -> None:
    """Make sure ``dx_names`` (account_id, bank, account) names every account_id of table ``ids_table``.

    ``dx_names`` is a cache for the whole run (the runner drops ``dx_`` tables at its start and end):
    names come from ``accounts`` first, then, for accounts still unnamed, from one pass over
    ``transactions`` naming every account not yet known. Looking the members up in ``transactions``
    for each detector cost a scan of its name columns per detector (~1 s each at 10 M payments); the
    one pass costs ~2.5 s and serves every later detector. An id is a hash of (bank, account), so
    the names found are the same whichever table or payment they come from.
    """
    if not engine.table_exists("dx_names"):
        engine.materialise(
            "dx_names",
            "SELECT CAST(NULL AS UBIGINT) AS account_id, CAST(NULL AS VARCHAR) AS bank, "
            "CAST(NULL AS VARCHAR) AS account WHERE false",
        )
    missing = f'SELECT account_id FROM "{ids_table}" EXCEPT SELECT account_id FROM dx_names'
    if _count(engine, missing) == 0:
        return
    engine.execute(
        f"""INSERT INTO dx_names SELECT account_id, min(bank), min(account) FROM accounts
            WHERE account_id IN ({missing}) GROUP BY account_id"""
    )
    if _count(engine, missing) == 0:
        return
    engine.execute(
        """INSERT INTO dx_names
           SELECT account_id, any_value(bank), any_value(account) FROM (
             SELECT src_id AS account_id, src_bank AS bank, src_account AS account FROM transactions
             UNION ALL SELECT dst_id, dst_bank, dst_account FROM transactions
           ) WHERE account_id NOT IN (SELECT account_id FROM dx_names) GROUP BY account_id"""
    )


def concat(detections: list[Detection]) -> Detection:
    """All hits of several detections in one."""
    if not detections:
        return Detection.empty()
    return Detection(
        pa.concat_tables([d.alerts for d in detections]),
        pa.concat_tables([d.members for d in detections]),
        pa.concat_tables([d.evidence for d in detections]),
    )
