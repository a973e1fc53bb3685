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
# A detector with many hits may give members and evidence as long tables instead of lists (no list to
# build and unnest again: 0.5 s at 10 M payments for pass-through's 68 k hits): the hit rows then have no
# members/evidence columns, the members table has (typology, akey, account_id, role, level) rows and the
# evidence table (typology, akey, txn_id) rows.

ROLE_ORDER = ("mule", "hub", "source", "sink", "member")


def params_for(query, settings) -> dict:
    """The settings whose names are parameters of ``query`` (settings fields share the names)."""
    values = {p.name: getattr(settings, p.name) for p in query.params if hasattr(settings, p.name)}
    return {k: ",".join(v) if isinstance(v, tuple) else v for k, v in values.items()}


def alert_id_sql(typology: str, key: str) -> str:
    """SQL expression equal to :func:`alert_id` (typology, key) for column expressions."""
    return f"{typology} || '-' || left(sha256({typology} || chr(31) || {key}), 16)"


def collect(engine, table: str, members: str | None = None, evidence: str | None = None) -> Detection:
    """Read hit rows from ``table`` (see above) into a Detection with bank/account names filled in.

    ``members`` and ``evidence`` name the long tables of a hit table without lists. A member listed
    twice in one alert keeps its most specific role (mule > hub > source > sink > member) and its
    lowest level. When the engine's ``names_later`` is set, the members' bank and account are left
    NULL: the caller names every family's members at once (:func:`name_members`), one look-up in the
    payments instead of one per family.
    """
    if engine.count(table) == 0:
        return Detection.empty()
    order = "CASE m.role " + " ".join(f"WHEN '{r}' THEN {i}" for i, r in enumerate(ROLE_ORDER)) + " ELSE 9 END"
    # the alert id (a sha256) once per hit, not once per member and evidence row
    engine.materialise("dx_hits", f'SELECT {alert_id_sql("typology", "akey")} AS alert_id, * FROM "{table}"')
    if members is None or evidence is None:
        long_members = "(SELECT alert_id, unnest(members) AS m FROM dx_hits)"
        long_evidence = "(SELECT alert_id, unnest(evidence) AS txn_id FROM dx_hits)"
    else:
        long_members = (
            "(SELECT h.alert_id, {'account_id': m.account_id, 'role': m.role, 'level': m.level} AS m "
            f'FROM "{members}" m JOIN dx_hits h ON h.typology = m.typology AND h.akey = m.akey)'
        )
        long_evidence = (
            f'(SELECT h.alert_id, e.txn_id FROM "{evidence}" e '
            "JOIN dx_hits h ON h.typology = e.typology AND h.akey = e.akey)"
        )
    engine.materialise(
        "dx_members",
        f"""SELECT alert_id, account_id, arg_min(role, ord) AS role, min(level) AS level FROM (
              SELECT alert_id, m.account_id AS account_id, m.role AS role, m.level AS level, {order} AS ord
              FROM {long_members}
            ) GROUP BY alert_id, account_id""",
    )
    engine.materialise(
        "dx_evidence", f"SELECT DISTINCT alert_id, CAST(txn_id AS VARCHAR) AS txn_id FROM {long_evidence}"
    )
    names_later = getattr(engine, "names_later", False)
    if not names_later:
        name_accounts(engine, "dx_members")
    alerts = engine.to_arrow(
        """SELECT h.alert_id, h.typology, CAST(least(1.0, greatest(0.0, h.score)) AS DOUBLE) AS score,
                  CAST(h.start_ts AS TIMESTAMP) AS start_ts, CAST(h.end_ts AS TIMESTAMP) AS end_ts,
                  CAST(h.amount AS DECIMAL(18, 4)) AS amount, CAST(coalesce(m.n, 0) AS INTEGER) AS n_accounts,
                  CAST(coalesce(e.n, 0) AS INTEGER) AS n_txns, h.summary
           FROM dx_hits h
           LEFT JOIN (SELECT alert_id, count(account_id) AS n FROM dx_members GROUP BY 1) m ON m.alert_id = h.alert_id
           LEFT JOIN (SELECT alert_id, count(txn_id) AS n FROM dx_evidence GROUP BY 1) e ON e.alert_id = h.alert_id
           ORDER BY h.alert_id"""
    )
    names = (
        "CAST(NULL AS VARCHAR) AS bank, CAST(NULL AS VARCHAR) AS account FROM dx_members m"
        if names_later
        else "n.bank, n.account FROM dx_members m JOIN dx_names n USING (account_id)"
    )
    members_out = engine.to_arrow(
        f"""SELECT m.alert_id, CAST(m.account_id AS UBIGINT) AS account_id, m.role, CAST(m.level AS INTEGER) AS level,
                   {names}
            ORDER BY m.alert_id, m.account_id"""
    ).select(MEMBER_SCHEMA.names)
    evidence_out = engine.to_arrow("SELECT alert_id, txn_id FROM dx_evidence ORDER BY 1, 2")
    for name in ("dx_hits", "dx_members", "dx_evidence"):
        engine.execute(f"DROP TABLE IF EXISTS {name}")
    return Detection(alerts.cast(ALERT_SCHEMA), members_out.cast(MEMBER_SCHEMA), evidence_out.cast(EVIDENCE_SCHEMA))


def name_accounts(engine, ids_table: str) -> None:
    """Make sure ``dx_names`` (account_id, bank, account) names every account_id of table ``ids_table``.

    ``dx_names`` is a cache for the whole run (the runner drops ``dx_`` tables at its start and end);
    only accounts it lacks are looked up: in the names stored by earlier runs (``detect_names``), in
    ``accounts``, then in the payments in two steps: one payment per account found by its integer ids
    alone, then the name strings of those payments only (by DuckDB's ``rowid``; that still reads the name
    columns of every row group holding one, nearly all of them: ~0.1-0.2 s at 10 M payments, whether
    they are 5 or 500 accounts). Reading the name columns of every payment of the members (or of all
    payments, to name every account at once) cost 1.5-3.5 s at 10 M payments. An id is a hash of (bank,
    account), so the names found are the same whichever table or payment they come from.
    """
    if not engine.table_exists("dx_names"):
        engine.materialise(
            "dx_names",
            "SELECT CAST(NULL AS UBIGINT) AS account_id, CAST(NULL AS VARCHAR) AS bank, "
            "CAST(NULL AS VARCHAR) AS account WHERE false",
        )
    engine.materialise(
        "dx_unnamed",
        f'SELECT DISTINCT account_id FROM "{ids_table}" WHERE account_id NOT IN (SELECT account_id FROM dx_names)',
    )
    if engine.count("dx_unnamed") > 0:
        _look_up_names(engine)
    engine.execute("DROP TABLE IF EXISTS dx_unnamed")


def _look_up_names(engine) -> None:
    """Name the accounts of ``dx_unnamed`` from ``detect_names``, ``accounts``, else from the payments they made,
    else from those they received (see :func:`name_accounts`); each source only for those still unnamed."""
    found = "DELETE FROM dx_unnamed WHERE account_id IN (SELECT account_id FROM dx_names)"
    for table in ("detect_names", "accounts"):
        if engine.table_exists(table):
            engine.execute(
                f"""INSERT INTO dx_names SELECT account_id, min(bank), min(account) FROM {table}
                    WHERE account_id IN (SELECT account_id FROM dx_unnamed) GROUP BY account_id"""
            )
            engine.execute(found)
            if engine.count("dx_unnamed") == 0:
                return
    for side in ("src", "dst"):  # nearly every member pays: the payee side is for the few that never do
        engine.materialise(
            "dx_named_by",
            f"""SELECT {side}_id AS account_id, min(rowid) AS r FROM transactions
                WHERE {side}_id IN (SELECT account_id FROM dx_unnamed) GROUP BY 1""",
        )
        engine.execute(
            f"""INSERT INTO dx_names SELECT {side}_id, {side}_bank, {side}_account
                FROM transactions WHERE rowid IN (SELECT r FROM dx_named_by)"""
        )
        engine.execute("DROP TABLE dx_named_by")
        engine.execute(found)
        if engine.count("dx_unnamed") == 0:
            return


def name_members(engine, table: str) -> None:
    """Fill in the bank and account of the members of temp table ``table`` (:data:`MEMBER_SCHEMA`'s columns) that
    :func:`collect` left unnamed (``names_later``), from the run's name cache, looked up once for all of them."""
    engine.materialise("dx_to_name", f'SELECT DISTINCT account_id FROM "{table}" WHERE bank IS NULL')
    if engine.count("dx_to_name") == 0:
        engine.execute("DROP TABLE dx_to_name")
        return
    name_accounts(engine, "dx_to_name")
    engine.execute("DROP TABLE dx_to_name")
    engine.materialise(
        "dx_named",
        f"""SELECT m.alert_id, coalesce(m.bank, n.bank) AS bank, coalesce(m.account, n.account) AS account,
                   m.account_id, m.role, m.level
            FROM "{table}" m LEFT JOIN dx_names n ON n.account_id = m.account_id""",
    )
    engine.execute(f'DROP TABLE "{table}"')
    engine.execute(f'ALTER TABLE dx_named RENAME TO "{table}"')


def concat(detections: list[Detection]) -> Detection:
    """All hits of several detections in one."""
    if not detections:
        return Detection.empty()
    return Detection(
        pa.concat_tables([d.alerts for d in detections]),
        pa.concat_tables([d.members for d in detections]),
        pa.concat_tables([d.evidence for d in detections]),
    )
