"""The analyst's bench: named queries, ad-hoc read-only SQL, one account's profile, an alert explained.

Named queries are the ``-- kind: analyst`` files under ``queries/analyst/`` (header format: see
:mod:`fundtrace.queries`). Values given on the command line (``-p key=value``) are checked against the
typed ``-- param:`` lines and bound by DuckDB as ``$name`` parameters, never pasted into the SQL. Two
conventions on top of the types:

- a VARCHAR parameter named ``account`` or ``*_account`` takes an account as ``BANK:ACCOUNT``;
- a parameter whose description says ``one of a|b|c`` accepts only those values.

:func:`run_sql` runs one SELECT on a workspace opened read-only, with file access switched off and the
configuration locked, so that nothing can write to the workspace or read or write a file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from fundtrace import queries
from fundtrace.engine.duckdb import DuckDBEngine
from fundtrace.errors import InputError, QueryError, UsageError
from fundtrace.queries import Query

__all__ = [
    "FORMATS",
    "TYPOLOGY_TEXT",
    "account_profile",
    "catalogue",
    "explain_alert",
    "export",
    "get",
    "parse_pairs",
    "prepare",
    "run",
    "run_sql",
    "split_account",
]

FORMATS = ("table", "csv", "json", "parquet")
_ACCOUNT_PARAM = re.compile(r"^(account|\w+_account)$")
_CHOICES = re.compile(r"one of ([\w|-]+)")
_ALLOWED_STATEMENTS = {"SELECT", "EXPLAIN"}

TYPOLOGY_TEXT = {
    "pass_through": "money left the account soon after it arrived, in about the same amount",
    "chain": "money was forwarded account to account, hop after hop, each payment soon after the one before",
    "fan_in": "many accounts paid one account within a short window",
    "fan_out": "one account paid many accounts within a short window",
    "scatter_gather": "money was split over several intermediaries and gathered again in one account",
    "gather_scatter": "money from many payers was gathered in one hub and spread out again",
    "stacked": "several layers of intermediaries passed the same money on in turn",
    "bipartite": "a group of payers and a group of payees were densely connected within a short window",
    "cycle": "money came back to where it started through a closed loop of payments",
    "structuring": "several payments stayed just under the reporting threshold",
    "card_farm_ring": "accounts share phone cards, devices or ids and were opened together: a card farm",
    "new_account_burst": "a newly opened account suddenly moved a lot of money",
    "dormant_active": "a long-dormant account suddenly became active",
}


# --- named queries -------------------------------------------------------------------------------------


def catalogue() -> list[Query]:
    """The analyst queries, by name."""
    return sorted((q for q in queries.all_queries().values() if q.kind == "analyst"), key=lambda q: q.name)


def get(name: str) -> Query:
    """The analyst query ``name``; an unknown name (or a detector's query) is a UsageError."""
    found = {q.name: q for q in catalogue()}
    if name not in found:
        raise UsageError(f"no analyst query named {name!r}", hint="see `fundtrace query --list`")
    return found[name]


def parse_pairs(pairs: list[str] | None) -> dict[str, str]:
    """``["key=value", ...]`` from ``-p`` options into a dict; a malformed or repeated key is a UsageError."""
    given: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"\w+", key):
            raise UsageError(f"-p {pair!r}: expected key=value")
        if key in given:
            raise UsageError(f"-p {key}: given twice")
        given[key] = value
    return given


def split_account(text: str, what: str = "account") -> tuple[str, str]:
    """``BANK:ACCOUNT`` into (bank, account); anything else is a UsageError."""
    bank, sep, account = str(text).partition(":")
    if not sep or not bank or not account:
        raise UsageError(f"{what} must be given as BANK:ACCOUNT, got {text!r}")
    return bank, account


def _choices(description: str) -> tuple[str, ...] | None:
    m = _CHOICES.search(description)
    return tuple(m[1].split("|")) if m else None


def prepare(query: Query, given: dict[str, Any]) -> dict[str, Any]:
    """Check ``given`` against ``query``'s parameters and return the values to bind.

    Unknown names, missing required values, values of the wrong type, accounts not written as
    BANK:ACCOUNT and values outside a ``one of`` list raise UsageError (exit 2).
    """
    values = query.bind(given)
    for p in query.params:
        value = values.get(p.name)
        if value is None:
            continue
        if p.type == "VARCHAR" and _ACCOUNT_PARAM.match(p.name):
            split_account(value, f"parameter {p.name}")
        allowed = _choices(p.description)
        if allowed and value not in allowed:
            raise UsageError(f"parameter {p.name} must be one of {', '.join(allowed)}, got {value!r}")
        if p.type in ("INTEGER", "BIGINT") and value < 0:
            raise UsageError(f"parameter {p.name} must be 0 or more, got {value}")
    return values


def run(ws, name: str, given: dict[str, Any] | None = None) -> pa.Table:
    """Run analyst query ``name`` with ``given`` parameters; return its rows."""
    query = get(name)
    params = prepare(query, given or {})
    return DuckDBEngine(ws.con).run_query(query, params)


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def export(ws, name: str, given: dict[str, Any] | None, out: Path, fmt: str) -> int:
    """Write query ``name``'s rows to ``out`` as csv, json (an array) or parquet (zstd), by the engine.

    Returns the number of rows written.
    """
    options = {
        "csv": "FORMAT csv, HEADER true",
        "json": "FORMAT json, ARRAY true",
        "parquet": "FORMAT parquet, COMPRESSION zstd",
    }
    if fmt not in options:
        raise UsageError(f"--out writes csv, json or parquet, not {fmt}")
    query = get(name)
    params = prepare(query, given or {})
    engine = DuckDBEngine(ws.con)
    steps = query.steps
    if len(steps) == 1:
        sql = steps[0][1]
    else:
        sql = f'SELECT * FROM "{engine.run_steps(steps, params)}"'
        params = {}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        rows = ws.con.execute(f"COPY ({sql}) TO {_literal(out)} ({options[fmt]})", params).fetchall()
    except duckdb.Error as exc:
        raise QueryError(query.name, sql, exc) from exc
    return int(rows[0][0]) if rows else 0


# --- ad-hoc SQL ------------------------------------------------------------------------------------------


def run_sql(ws, text: str) -> pa.Table:
    """Run one SELECT (or EXPLAIN) on a workspace opened read-only, with file access off.

    The connection is locked down first (``enable_external_access = false``, ``lock_configuration =
    true``), so a statement cannot read or write files, attach databases, install extensions or switch
    the protection back on. Writes are refused by the statement check and by the read-only workspace.
    """
    if not ws.read_only:
        raise UsageError("fundtrace sql needs the workspace opened read-only")
    con = ws.con
    con.execute("SET enable_external_access = false").fetchall()
    con.execute("SET lock_configuration = true").fetchall()
    try:
        statements = duckdb.extract_statements(text)
    except duckdb.Error as exc:
        raise InputError(f"SQL error: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise InputError(f"fundtrace sql runs exactly one statement, got {len(statements)}")
    kind = statements[0].type.name
    if kind not in _ALLOWED_STATEMENTS:
        raise InputError(
            f"fundtrace sql only reads: {kind} statements are refused",
            hint="use SELECT; the workspace is opened read-only",
        )
    try:
        return con.sql(text).to_arrow_table()
    except duckdb.PermissionException as exc:
        raise InputError(f"fundtrace sql cannot read or write files: {_first_line(exc)}") from None
    except duckdb.Error as exc:
        message = _first_line(exc)
        if "read-only" in message:
            raise InputError(f"fundtrace sql only reads: {message}") from None
        raise InputError(f"SQL error: {message}") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- one account, one alert ------------------------------------------------------------------------------


def _rows(con, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return con.sql(sql, params=params).pl().to_dicts()


def account_profile(ws, account: str) -> dict[str, list[dict[str, Any]]]:
    """Everything known about ``BANK:ACCOUNT``: ledger summary, links, alerts, rings, traces, score, freezes.

    Each section is a list of rows (possibly empty). An account that is neither in the registry nor in
    any payment is an InputError.
    """
    bank, acct = split_account(account)
    con = ws.con
    summary = run(ws, "account_summary", {"account": f"{bank}:{acct}"}).to_pylist()
    if not summary:
        raise InputError(f"no account {bank}:{acct} in the workspace (neither in accounts nor in any payment)")
    p = {"bank": bank, "account": acct}
    sections: dict[str, list[dict[str, Any]]] = {"summary": summary}
    sections["links"] = _rows(
        con,
        """
        SELECT l.kind, l.value, l.first_seen,
               (SELECT count(DISTINCT o.account_id) FROM links o
                WHERE o.kind = l.kind AND o.value = l.value AND o.account_id <> l.account_id) AS shared_with
        FROM links l WHERE l.bank = $bank AND l.account = $account ORDER BY l.kind, l.value
        """,
        p,
    )
    sections["alerts"] = _rows(
        con,
        """
        SELECT a.alert_id, a.typology, round(a.score, 3) AS score, m.role, m.level, a.start_ts, a.amount, a.summary
        FROM alert_members m JOIN alerts a USING (alert_id)
        WHERE m.bank = $bank AND m.account = $account AND a.typology <> 'card_farm_ring'
        ORDER BY a.score DESC, a.start_ts, a.alert_id
        """,
        p,
    )
    sections["rings"] = _rows(
        con,
        """
        SELECT a.alert_id AS ring_id, round(a.score, 3) AS score, a.n_accounts, a.summary
        FROM alert_members m JOIN alerts a USING (alert_id)
        WHERE m.bank = $bank AND m.account = $account AND a.typology = 'card_farm_ring'
        ORDER BY a.score DESC, a.alert_id
        """,
        p,
    )
    sections["traces"] = _rows(
        con,
        """
        SELECT case_id, hop AS level, first_tainted_at, last_tainted_at, balance, held_poison, held_haircut,
               held_fifo, held_lifo, held_libr, as_of
        FROM trace_holdings WHERE bank = $bank AND account = $account ORDER BY case_id
        """,
        p,
    )
    sections["score"] = _rows(
        con,
        """
        SELECT round(score, 3) AS score, band, reasons, held_victim, cases, ring, frozen, as_of
        FROM account_scores WHERE bank = $bank AND account = $account
        """,
        p,
    )
    sections["reasons"] = _rows(
        con,
        """
        SELECT r.code, round(r.contribution, 3) AS contribution
        FROM (SELECT unnest(reason_list) AS r FROM account_scores WHERE bank = $bank AND account = $account)
        ORDER BY r.contribution DESC, r.code
        """,
        p,
    )
    sections["freeze"] = _rows(
        con,
        """
        SELECT 'listed' AS source, NULL AS request_id, CASE WHEN stop_pay THEN 'STOP_PAY_48H' ELSE 'FREEZE' END AS type,
               case_ids, amount_to_freeze, rule, NULL::TIMESTAMP AS requested_at, NULL::TIMESTAMP AS expires_at,
               'decided' AS status
        FROM freeze_list WHERE bank = $bank AND account = $account
        UNION ALL
        SELECT 'issued', request_id, request_type, case_ids, amount_to_freeze, rule, requested_at, expires_at, status
        FROM freeze_requests WHERE bank = $bank AND account = $account
        ORDER BY source DESC, requested_at
        """,
        p,
    )
    return sections


def explain_alert(ws, alert_id: str) -> dict[str, Any]:
    """Why alert ``alert_id`` fired: the alert, what its typology means, its members and evidence payments."""
    con = ws.con
    p = {"alert_id": alert_id}
    alert = _rows(con, "SELECT * FROM alerts WHERE alert_id = $alert_id", p)
    if not alert:
        raise InputError(f"no alert {alert_id!r}", hint="list alerts with `fundtrace query alerts`")
    row = alert[0]
    members = _rows(
        con,
        """
        SELECT m.bank, m.account, m.role, m.level, s.score, s.band
        FROM alert_members m LEFT JOIN account_scores s ON s.account_id = m.account_id
        WHERE m.alert_id = $alert_id
        ORDER BY CASE m.role WHEN 'source' THEN 0 WHEN 'mule' THEN 1 WHEN 'hub' THEN 2 WHEN 'sink' THEN 3 ELSE 4 END,
                 m.level NULLS LAST, m.bank, m.account
        """,
        p,
    )
    evidence = _rows(
        con,
        """
        SELECT e.txn_id, t.ts, t.src_bank || ':' || t.src_account AS from_account,
               t.dst_bank || ':' || t.dst_account AS to_account, t.amount, t.channel
        FROM alert_evidence e LEFT JOIN transactions t USING (txn_id)
        WHERE e.alert_id = $alert_id
        ORDER BY t.ts NULLS LAST, e.txn_id
        """,
        p,
    )
    why = TYPOLOGY_TEXT.get(row["typology"], row["typology"])
    return {
        "alert": row,
        "why": f"{row['typology']}: {why}. {row['summary']}",
        "members": members,
        "evidence": evidence,
    }
