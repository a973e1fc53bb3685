"""Measuring what the workspace found against ground truth.

:func:`evaluate` compares the workspace's results (alerts, account scores, tracing holdings, the
freeze list) with the truth of a labelled world and returns plain dicts, one section per stage.
A stage whose result table does not exist, or is empty because the stage never ran, is reported as
``{"status": "absent", "reason": ...}``, never as zeros; so is a measure the truth cannot support
(AMLSim and AMLworld label transactions only, so they have no money-level holdings).

Truth kinds, told apart by the files present (:func:`truth_kind`):

``fundtrace``
    Our simulator's ``truth_accounts``, ``truth_transactions``, ``truth_holdings`` and
    ``truth_cases`` files (CSV, CSV.gz or Parquet). A positive account has role ``mule`` or
    ``cash_out``; a fraud transaction has ``is_fraud``; typologies come from the files.
``amlsim``
    IBM AMLSim's ``transactions.csv[.gz]`` (``is_sar``, ``alert_id``) and/or
    ``alert_accounts.csv[.gz]`` (``alert_id``, ``alert_type``, ``acct_id``, ``is_sar``). A
    transaction is fraud when ``is_sar``; a positive account has at least one fraud transaction;
    its typology is the ``alert_type`` of that transaction's alert. AMLSim's earlier layout (its
    published sample sets) is read too: ``TX_ID``, ``IS_FRAUD``, ``ALERT_ID`` in ``transactions`` and
    the alert types in ``alerts`` (``ALERT_ID``, ``ALERT_TYPE``). Without the transactions file,
    the workspace's ``labels`` (source ``amlsim``) stand in for it. Accounts are under bank ``amlsim``.
``amlworld``
    IBM AMLworld's ``Is Laundering`` labels, as loaded into the workspace's ``labels`` table
    (source ``amlworld``). Both accounts of a laundering transaction are positive. Typologies come
    from the ``*Patterns*.txt`` file beside the transactions when the truth directory has one (each
    laundering attempt's payments under ``BEGIN LAUNDERING ATTEMPT - FAN-OUT: ...``, matched to the
    loaded payments by time, both accounts, amount paid and currency); without it, none.

Definitions (all counted over the workspace's data; an undefined ratio is ``None``, not 0):

- The account universe is the accounts that transact (appear in ``transactions``): truth
  positives that never transact, and alert members that never transact, are not counted.
- Flagged account (predicted positive): a member of any alert, of the roles the truth kind calls
  positive (:func:`excluded_roles`). Our simulator's truth does not count the victim who starts a
  case, so for ``fundtrace`` truth members with role ``source`` are not flagged; AMLSim and AMLworld
  label every account of a laundering transaction positive, its originator included (a fan-in's
  payers, a cycle's origin), so for them members of every role are flagged.
- Account level, overall: precision = flagged ∩ positive / flagged, recall = flagged ∩ positive /
  positive, F1 their harmonic mean.
- Account level, per typology T: ``truth`` = positive accounts of typology T, ``found`` = those
  flagged by an alert of *any* typology, ``recall`` = found / truth; ``flagged`` = accounts flagged
  by alerts of typology T, ``correct`` = those that are positive (of any typology), ``precision`` =
  correct / flagged; F1 of the two. A detector may name a pattern differently from the generator
  (a chain the generator calls ``stacked``), so recall does not require the same typology name.
- Transaction level: the same, with fraud transactions as truth and ``alert_evidence``
  transactions as predictions. Evidence belongs to an alert, not to a member, so every evidence
  transaction counts whatever the roles of its two accounts, for every truth kind (our simulator's
  fraud transactions include the victim's payment to the first mule, though the victim is not a
  positive account).
- Account scores (``account_scores(bank, account, score)``): average precision (PR-AUC, ties in
  score taken as one threshold; positives never scored count as never recalled) and precision@k
  for k = 100 and 1000 (over the top min(k, scored) accounts, ties broken by bank and account).
- Tracing, per rule (``held_poison`` ... ``held_libr`` of ``trace_holdings``) against
  ``truth_holdings``, over the cases reported in the workspace and pairs (case, bank, account) in
  either table: money recall = Σ min(held, truth) / Σ truth, money precision = Σ min(held, truth)
  / Σ held, mean absolute error per pair; the closest rule has the smallest error.
- Freeze list (``freeze_list(bank, account, case_ids, amount_to_freeze)``), per account:
  money recall = Σ min(frozen, truth) / Σ truth, money precision = Σ min(frozen, truth) / Σ frozen,
  where truth is the victims' money the account held at report time, summed over reported cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from fundtrace.errors import InputError
from fundtrace.schema import TRACE_RULES
from fundtrace.workspace import Workspace

__all__ = ["RULES", "K_VALUES", "evaluate", "excluded_roles", "truth_kind", "find_truth_file"]

RULES = TRACE_RULES
K_VALUES = (100, 1000)
POSITIVE_ROLES = ("mule", "cash_out")
# Alert member roles that do not make an account flagged, per truth kind (see excluded_roles).
_EXCLUDED_ROLES = {"fundtrace": ("source",), "amlsim": (), "amlworld": ()}
_EXTENSIONS = (".parquet", ".pq", ".csv", ".csv.gz")
_TRUE = "('true', '1', 't', 'yes', 'y')"
# Temporary tables this module creates on the workspace connection (never in the workspace file).
_ACTIVE, _POS, _FRAUD, _HOLD = "ft_eval_active", "ft_eval_pos", "ft_eval_fraud", "ft_eval_holdings"
_TYPES, _PATTERNS = "ft_eval_alert_types", "ft_eval_patterns"


def find_truth_file(directory: Path, name: str) -> Path | None:
    """``DIR/name.parquet``, ``.pq``, ``.csv`` or ``.csv.gz``, whichever exists first."""
    for ext in _EXTENSIONS:
        path = directory / f"{name}{ext}"
        if path.is_file():
            return path
    return None


def excluded_roles(kind: str) -> tuple[str, ...]:
    """The alert member roles that do not flag an account under truth of ``kind``.

    ``("source",)`` for ``fundtrace`` truth, whose positives are mules and cash-out accounts and
    not the victims who start a case; ``()`` for ``amlsim`` and ``amlworld``, whose truth labels
    both ends of every laundering transaction, so a fan-in's payers and a cycle's origin are
    positive and an alert member of any role counts as flagged.

    Examples
    --------
    >>> excluded_roles("fundtrace"), excluded_roles("amlsim")
    (('source',), ())
    """
    try:
        return _EXCLUDED_ROLES[kind]
    except KeyError:
        raise InputError(f"unknown truth kind {kind!r}", hint=f"one of {', '.join(_EXCLUDED_ROLES)}") from None


def truth_kind(ws: Workspace, directory: Path | None) -> str:
    """``fundtrace``, ``amlsim`` or ``amlworld``, from the files in ``directory`` (or, without one,
    from the labels loaded into the workspace)."""
    if directory is None:
        sources = {r[0] for r in ws.con.execute("SELECT DISTINCT source FROM labels").fetchall()}
        for kind in ("amlworld", "amlsim"):
            if kind in sources:
                return kind
        raise InputError(
            "no --truth directory given and the workspace holds no labels",
            hint="pass --truth DIR with truth_* files, or load AMLSim/AMLworld transactions with their profile",
        )
    if not directory.is_dir():
        raise InputError(f"--truth {directory}: not a directory")
    if any(find_truth_file(directory, n) for n in ("truth_accounts", "truth_transactions", "truth_holdings")):
        return "fundtrace"
    if find_truth_file(directory, "alert_accounts"):
        return "amlsim"
    alerts = find_truth_file(directory, "alerts")
    if alerts and "alert_type" in _lower_columns(ws.con, alerts):
        return "amlsim"
    txns = find_truth_file(directory, "transactions")
    if txns and _amlsim_flag(_lower_columns(ws.con, txns)):
        return "amlsim"
    for path in sorted(directory.iterdir()):
        if (
            path.is_file()
            and path.name.lower().endswith((".csv", ".csv.gz"))
            and "Is Laundering" in _columns(ws.con, path)
        ):
            return "amlworld"
    if any(directory.glob("*[Pp]atterns*.txt")):  # AMLworld's typologies; its labels are in the workspace
        return "amlworld"
    raise InputError(
        f"--truth {directory}: no ground truth found",
        hint="expected truth_accounts/truth_transactions/truth_holdings (fundtrace simulate), "
        "alert_accounts, alerts or transactions with is_sar or IS_FRAUD (AMLSim), or an AMLworld file with "
        "'Is Laundering' or its *_Patterns.txt",
    )


def evaluate(ws: Workspace, truth: Path | None = None) -> dict[str, Any]:
    """Compare the workspace's results with the truth in ``truth`` (a directory); see the module doc.

    Returns ``{"truth": {...}, "detection": {"accounts": ..., "transactions": ...}, "scores": ...,
    "tracing": ..., "freeze": ...}``; each section has ``status`` ``ok`` or ``absent``.
    """
    kind = truth_kind(ws, truth)
    con = ws.con
    try:
        staged = _stage_truth(ws, kind, truth)
        info = _truth_summary(con, kind, truth, staged)
        return {
            "truth": info,
            "detection": {
                "accounts": _detection_accounts(ws, staged),
                "transactions": _detection_transactions(ws, staged),
            },
            "scores": _scores(ws, staged),
            "tracing": _tracing(ws, staged, kind),
            "freeze": _freeze(ws, staged, kind),
        }
    finally:
        for name in (_ACTIVE, _POS, _FRAUD, _HOLD, _TYPES, _PATTERNS):
            con.execute(f"DROP TABLE IF EXISTS temp.{name}").fetchall()


# ----------------------------------------------------------------------------------------------
# Reading the truth into a uniform shape


@dataclass
class _Staged:
    """Which uniform truth tables exist: positive accounts, fraud transactions, holdings."""

    kind: str  # fundtrace, amlsim or amlworld
    accounts: str | None = None  # why not, when missing
    transactions: str | None = None
    holdings: str | None = None
    has_accounts: bool = False
    has_transactions: bool = False
    has_holdings: bool = False
    patterns: dict | None = None  # AMLworld's patterns file: path, payments listed, matched to loaded ones


def _source(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    """A table function reading ``path``; the path is bound as ``$path``."""
    if path.name.lower().endswith((".parquet", ".pq")):
        return "read_parquet($path)"
    return "read_csv($path, header = true, all_varchar = true)"


def _columns(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {_source(con, path)}", {"path": str(path)}).fetchall()
    except duckdb.Error as exc:
        raise InputError(f"{path}: cannot read: {str(exc).strip().splitlines()[0]}") from None
    return [r[0] for r in rows]


def _lower_columns(con: duckdb.DuckDBPyConnection, path: Path) -> set[str]:
    return {c.lower() for c in _columns(con, path)}


def _amlsim_flag(columns: set[str]) -> tuple[str, str] | None:
    """(id, laundering flag) columns of an AMLSim transactions file: tran_id and is_sar, or, in its earlier
    layout (the published sample sets), TX_ID and IS_FRAUD; None when it has neither."""
    for pair in (("tran_id", "is_sar"), ("tx_id", "is_fraud")):
        if set(pair) <= columns:
            return pair
    return None


def _read(con: duckdb.DuckDBPyConnection, path: Path, required: tuple[str, ...]) -> str:
    """A sub-query over the truth file ``path`` (bound as ``$path``), after checking its columns."""
    present = _columns(con, path)
    lower = {c.lower() for c in present}  # SQL names are case-insensitive (AMLSim's earlier files: TX_ID ...)
    missing = [c for c in required if c.lower() not in lower]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(present)})")
    return f"(SELECT * FROM {_source(con, path)})"


def _create(con: duckdb.DuckDBPyConnection, name: str, sql: str, path: Path | None = None, **params: Any) -> None:
    if path is not None:
        params["path"] = str(path)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}", params).fetchall()
    except duckdb.Error as exc:
        where = f"{path}: " if path else ""
        raise InputError(f"{where}cannot read the truth: {str(exc).strip().splitlines()[0]}") from None


def _flag(expr: str) -> str:
    return f"(lower(trim(CAST({expr} AS VARCHAR))) IN {_TRUE})"


def _stage_truth(ws: Workspace, kind: str, directory: Path | None) -> _Staged:
    con = ws.con
    staged = _Staged(kind=kind)
    _create(
        con,
        _ACTIVE,
        "SELECT src_bank AS bank, src_account AS account FROM transactions "
        "UNION SELECT dst_bank, dst_account FROM transactions",
    )
    # Fraud transactions: (txn_id, typology), restricted to the workspace's transactions.
    fraud_sql: str | None = None
    fraud_path: Path | None = None
    if kind == "fundtrace":
        path = find_truth_file(directory, "truth_transactions")
        if path:
            src = _read(con, path, ("txn_id", "is_fraud", "typology"))
            fraud_sql = f"SELECT CAST(txn_id AS VARCHAR) AS txn_id, CAST(typology AS VARCHAR) AS typology FROM {src} WHERE {_flag('is_fraud')}"  # noqa: E501
            fraud_path = path
        else:
            staged.transactions = "the truth has no truth_transactions file"
    elif kind == "amlsim":
        types = _amlsim_alert_types(con, directory)
        path = find_truth_file(directory, "transactions") if directory else None
        columns = _lower_columns(con, path) if path else set()
        if path and (pair := _amlsim_flag(columns)):
            tid, flag = pair
            src = _read(con, path, (tid, flag))
            alert = "CAST(alert_id AS VARCHAR)" if "alert_id" in columns else "NULL"
            fraud_sql = f"SELECT CAST({tid} AS VARCHAR) AS txn_id, {alert} AS alert_id FROM {src} WHERE {_flag(flag)}"
            fraud_path = path
        elif _has_labels(con, "amlsim"):
            fraud_sql = (
                "SELECT txn_id, alert_id FROM labels WHERE source = 'amlsim' AND entity = 'transaction' AND is_fraud"
            )
        else:
            staged.transactions = "the truth has no AMLSim transactions file and the workspace no AMLSim labels"
        if fraud_sql:
            fraud_sql = f"SELECT f.txn_id, t.alert_type AS typology FROM ({fraud_sql}) f LEFT JOIN {types} t ON t.alert_id = f.alert_id"  # noqa: E501
    else:  # amlworld
        if not _has_labels(con, "amlworld"):
            raise InputError(
                "the workspace holds no AMLworld labels",
                hint="load the AMLworld transactions file with `fundtrace load transactions --profile amlworld`",
            )
        typed = _amlworld_patterns(con, directory, staged)
        fraud_sql = (
            f"SELECT l.txn_id, p.typology FROM labels l LEFT JOIN {typed} p ON p.txn_id = l.txn_id "
            "WHERE l.source = 'amlworld' AND l.entity = 'transaction' AND l.is_fraud"
        )
    if fraud_sql:
        _create(
            con,
            _FRAUD,
            f"SELECT DISTINCT f.txn_id, f.typology, t.src_bank, t.src_account, t.dst_bank, t.dst_account "
            f"FROM ({fraud_sql}) f JOIN transactions t ON t.txn_id = f.txn_id",
            fraud_path,
        )
        staged.has_transactions = True

    # Positive accounts: (bank, account, typology), restricted to accounts that transact.
    pos_sql: str | None = None
    pos_path: Path | None = None
    if kind == "fundtrace":
        path = find_truth_file(directory, "truth_accounts")
        if path:
            src = _read(con, path, ("bank", "account", "role", "typology"))
            roles = ", ".join(f"'{r}'" for r in POSITIVE_ROLES)
            pos_sql = (
                f"SELECT CAST(bank AS VARCHAR) AS bank, CAST(account AS VARCHAR) AS account, "
                f"CAST(typology AS VARCHAR) AS typology FROM {src} WHERE lower(CAST(role AS VARCHAR)) IN ({roles})"
            )
            pos_path = path
        else:
            staged.accounts = "the truth has no truth_accounts file"
    elif staged.has_transactions:  # AMLSim and AMLworld: both ends of a fraud transaction
        pos_sql = (
            f"SELECT src_bank AS bank, src_account AS account, typology FROM {_FRAUD} "
            f"UNION ALL SELECT dst_bank, dst_account, typology FROM {_FRAUD}"
        )
    elif kind == "amlsim" and find_truth_file(directory, "alert_accounts"):
        path = find_truth_file(directory, "alert_accounts")
        src = _read(con, path, ("alert_type", "acct_id", "is_sar"))
        pos_sql = (
            f"SELECT 'amlsim' AS bank, CAST(acct_id AS VARCHAR) AS account, CAST(alert_type AS VARCHAR) AS typology "
            f"FROM {src} WHERE {_flag('is_sar')}"
        )
        pos_path = path
    if pos_sql:
        _create(
            con,
            _POS,
            f"SELECT DISTINCT p.bank, p.account, p.typology FROM ({pos_sql}) p "
            f"SEMI JOIN {_ACTIVE} a ON a.bank = p.bank AND a.account = p.account",
            pos_path,
        )
        staged.has_accounts = True
    elif staged.accounts is None:
        staged.accounts = "the truth has no account labels"

    # Money-level holdings: only our simulator knows them.
    if kind == "fundtrace":
        path = find_truth_file(directory, "truth_holdings")
        if path:
            src = _read(con, path, ("case_id", "bank", "account", "held"))
            _create(
                con,
                _HOLD,
                f"SELECT CAST(case_id AS VARCHAR) AS case_id, CAST(bank AS VARCHAR) AS bank, "
                f"CAST(account AS VARCHAR) AS account, sum(CAST(held AS DECIMAL(18, 4))) AS held "
                f"FROM {src} WHERE CAST(case_id AS VARCHAR) IN (SELECT case_id FROM reports) GROUP BY ALL",
                path,
            )
            staged.has_holdings = True
        else:
            staged.holdings = "the truth has no truth_holdings file"
    else:
        staged.holdings = f"{kind} truth labels transactions only; it has no money-level holdings"
    return staged


# AMLworld's names of its laundering patterns that differ from fundtrace's typologies once lower-cased, "-" -> "_"
_PATTERN_TYPOLOGIES = {"STACK": "stacked"}


def _amlworld_patterns(con: duckdb.DuckDBPyConnection, directory: Path | None, staged: _Staged) -> str:
    """Stage (txn_id, typology) of the payments AMLworld's patterns file lists; return the relation.

    The file (``HI-Small_Patterns.txt``) is not CSV: blocks of transaction lines as in ``*_Trans.csv``,
    without a header, between ``BEGIN LAUNDERING ATTEMPT - FAN-OUT:  Max 16-degree Fan-Out`` and
    ``END LAUNDERING ATTEMPT - FAN-OUT``. A line is matched to the loaded payments as the amlworld profile
    loads it (time, banks without leading zeros, accounts, amount paid, currency code); identical
    payments all match. A line that is no transaction is an error naming it.
    """
    from fundtrace.ingest.profiles import PROFILES

    none = "(SELECT CAST(NULL AS VARCHAR) AS txn_id, CAST(NULL AS VARCHAR) AS typology WHERE false)"
    found = sorted(p for p in directory.glob("*[Pp]atterns*.txt") if p.is_file()) if directory else []
    if not found:
        return none
    path = found[0]
    mapping = PROFILES["amlworld"]["transactions"]
    # the lines' cells under the transactions file's own column names (as DuckDB reads its header), so that the
    # profile's expressions make them payments exactly as a load does
    source = ("Timestamp", "From Bank", "Account", "To Bank", "Account_1", "Amount Received",
              "Receiving Currency", "Amount Paid", "Payment Currency", "Payment Format")  # fmt: skip
    rows: dict[str, list] = {n: [] for n in (*source, "typology")}
    typology = None
    with path.open(encoding="utf-8-sig", errors="replace") as f:  # a copy saved by Excel starts with a BOM
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line.startswith("BEGIN LAUNDERING ATTEMPT"):
                name = line.partition("-")[2].partition(":")[0].strip().upper()
                typology = _PATTERN_TYPOLOGIES.get(name, name.lower().replace("-", "_"))
            elif line.startswith("END LAUNDERING ATTEMPT"):
                typology = None
            elif line and typology:
                cells = line.split(",")
                if len(cells) < len(source):
                    raise InputError(f"{path}:{n}: not a transaction line: {line[:80]!r}")
                for name, value in zip(rows, (*cells[: len(source)], typology), strict=True):
                    rows[name].append(value)
    con.register("ft_eval_patterns_in", pa.table(rows, schema=pa.schema([(n, pa.string()) for n in rows])))
    c = mapping.columns
    try:
        _create(
            con,
            _PATTERNS,
            f"""SELECT DISTINCT t.txn_id, p.typology FROM (
                  SELECT TRY_CAST({c["ts"]} AS TIMESTAMP) AS ts, {c["src_bank"]} AS src_bank,
                         {c["src_account"]} AS src_account, {c["dst_bank"]} AS dst_bank,
                         {c["dst_account"]} AS dst_account, TRY_CAST({c["amount"]} AS DECIMAL(18, 4)) AS amount,
                         {c["currency"]} AS currency, typology
                  FROM ft_eval_patterns_in) p
                JOIN transactions t ON t.ts = p.ts AND t.src_bank = p.src_bank AND t.src_account = p.src_account
                  AND t.dst_bank = p.dst_bank AND t.dst_account = p.dst_account AND t.amount = p.amount
                  AND t.currency = p.currency""",
        )
    finally:
        con.unregister("ft_eval_patterns_in")
    staged.patterns = {
        "path": str(path),
        "listed": len(rows["typology"]),
        "matched": _scalar(con, f"SELECT count(DISTINCT txn_id) FROM {_PATTERNS}"),
    }
    return _PATTERNS


def _amlsim_alert_types(con: duckdb.DuckDBPyConnection, directory: Path | None) -> str:
    """Stage (alert_id, alert_type) from alert_accounts or alert_transactions; return the relation."""
    for name in ("alert_accounts", "alert_transactions", "alerts"):  # alerts: AMLSim's earlier layout
        path = find_truth_file(directory, name) if directory else None
        if path and {"alert_id", "alert_type"} <= _lower_columns(con, path):
            _create(
                con,
                _TYPES,
                f"SELECT CAST(alert_id AS VARCHAR) AS alert_id, any_value(CAST(alert_type AS VARCHAR)) AS alert_type "
                f"FROM {_read(con, path, ('alert_id', 'alert_type'))} GROUP BY 1",
                path,
            )
            return _TYPES
    return "(SELECT CAST(NULL AS VARCHAR) AS alert_id, CAST(NULL AS VARCHAR) AS alert_type WHERE false)"


def _has_labels(con: duckdb.DuckDBPyConnection, source: str) -> bool:
    rows = con.execute("SELECT count(*) FROM labels WHERE source = ? AND is_fraud", [source]).fetchall()
    return rows[0][0] > 0


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> Any:
    return con.execute(sql, params or []).fetchall()[0][0]


def _truth_summary(con: duckdb.DuckDBPyConnection, kind: str, directory: Path | None, staged: _Staged) -> dict:
    info: dict[str, Any] = {
        "kind": kind,
        "path": str(directory) if directory else "workspace labels",
        "transacting_accounts": _scalar(con, f"SELECT count(*) FROM {_ACTIVE}"),
        "positive_accounts": _scalar(con, f"SELECT count(*) FROM (SELECT DISTINCT bank, account FROM {_POS})")
        if staged.has_accounts
        else None,
        "transactions": _scalar(con, "SELECT count(*) FROM transactions"),
        "fraud_transactions": _scalar(con, f"SELECT count(*) FROM {_FRAUD}") if staged.has_transactions else None,
        "reported_cases": _scalar(con, "SELECT count(DISTINCT case_id) FROM reports"),
        "money_held_at_report": _money(_scalar(con, f"SELECT sum(held) FROM {_HOLD}")) if staged.has_holdings else None,
    }
    if staged.patterns:
        info["patterns"] = staged.patterns
    cases = find_truth_file(directory, "truth_cases") if kind == "fundtrace" else None
    if cases:
        src = _read(con, cases, ("case_id", "amount_lost", "reported_at"))
        n, reported, lost = con.execute(
            f"SELECT count(DISTINCT case_id), count(DISTINCT case_id) FILTER (WHERE NULLIF(CAST(reported_at AS VARCHAR), '') IS NOT NULL), "  # noqa: E501
            f"sum(CAST(amount_lost AS DECIMAL(18, 4))) FROM {src}",
            {"path": str(cases)},
        ).fetchall()[0]
        info.update(truth_cases=n, truth_cases_reported=reported, truth_money_lost=_money(lost))
    return info


def _money(value: Any) -> float | None:
    return None if value is None else float(value)


# ----------------------------------------------------------------------------------------------
# Detection


# A stage that records its runs: an empty result table after a recorded run means "found nothing".
_RUN_TABLES = {"detection": "detect_runs"}


def _table_state(ws: Workspace, table: str, stage: str) -> str | None:
    """Why ``table`` cannot be measured (missing, or empty because the stage never ran), or None."""
    if not ws.table_exists(table):
        return f"no {table} table: {stage} is not built yet"
    if _has_rows(ws, table):
        return None
    runs = _RUN_TABLES.get(stage)
    if runs and ws.table_exists(runs) and _has_rows(ws, runs):
        return None  # the stage ran and found nothing: measure it (recall 0), do not call it absent
    return f"the {table} table is empty: {stage} has not run"


def _has_rows(ws: Workspace, table: str) -> bool:
    return _scalar(ws.con, f'SELECT count(*) FROM (SELECT 1 FROM "{table}" LIMIT 1)') > 0


def _absent(reason: str) -> dict:
    return {"status": "absent", "reason": reason}


def _ratio(num: Any, den: Any) -> float | None:
    return None if not den else float(num) / float(den)


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _confusion(con: duckdb.DuckDBPyConnection, truth: str, pred: str, keys: tuple[str, ...]) -> list[dict]:
    """Rows per typology and one ``overall`` row: truth, found, recall, flagged, correct, precision, f1.

    ``truth`` and ``pred`` are relations with columns ``keys`` and ``typology`` (our own SQL)."""
    k = ", ".join(keys)
    on = " AND ".join(f"x.{c} = y.{c}" for c in keys)
    sql = f"""
        WITH t AS (SELECT DISTINCT {k}, typology FROM ({truth})),
             p AS (SELECT DISTINCT {k}, coalesce(typology, 'unknown') AS typology FROM ({pred})),
             tk AS (SELECT DISTINCT {k} FROM t),
             pk AS (SELECT DISTINCT {k} FROM p),
             by_truth AS (
                 SELECT x.typology, count(*) AS truth, count(*) FILTER (WHERE EXISTS
                        (SELECT 1 FROM pk y WHERE {on})) AS found
                 FROM t x WHERE x.typology IS NOT NULL GROUP BY x.typology),
             by_pred AS (
                 SELECT x.typology, count(*) AS flagged, count(*) FILTER (WHERE EXISTS
                        (SELECT 1 FROM tk y WHERE {on})) AS correct
                 FROM p x GROUP BY x.typology)
        SELECT coalesce(a.typology, b.typology) AS typology, coalesce(a.truth, 0), coalesce(a.found, 0),
               coalesce(b.flagged, 0), coalesce(b.correct, 0)
        FROM by_truth a FULL OUTER JOIN by_pred b ON a.typology = b.typology
        ORDER BY 1
    """
    rows = [("overall", *_overall(con, k, on, truth, pred))] + con.execute(sql).fetchall()
    out = []
    for typology, n_truth, found, flagged, correct in rows:
        recall, precision = _ratio(found, n_truth), _ratio(correct, flagged)
        out.append(
            {
                "typology": typology,
                "truth": n_truth,
                "found": found,
                "recall": recall,
                "flagged": flagged,
                "correct": correct,
                "precision": precision,
                "f1": _f1(precision, recall),
            }
        )
    return out


def _overall(con: duckdb.DuckDBPyConnection, k: str, on: str, truth: str, pred: str) -> tuple[int, int, int, int]:
    n_truth, n_pred, tp = con.execute(
        f"""
        WITH tk AS (SELECT DISTINCT {k} FROM ({truth})), pk AS (SELECT DISTINCT {k} FROM ({pred}))
        SELECT (SELECT count(*) FROM tk), (SELECT count(*) FROM pk),
               (SELECT count(*) FROM tk x WHERE EXISTS (SELECT 1 FROM pk y WHERE {on}))
        """
    ).fetchall()[0]
    return n_truth, tp, n_pred, tp


def _detection_accounts(ws: Workspace, staged: _Staged) -> dict:
    for table in ("alerts", "alert_members"):
        reason = _table_state(ws, table, "detection")
        if reason:
            return _absent(reason)
    if not staged.has_accounts:
        return _absent(staged.accounts or "no account truth")
    excluded = excluded_roles(staged.kind)
    # Our own constant role names, never user input; a member without a role is always flagged.
    listed = ", ".join(f"'{r}'" for r in excluded)
    keep = f"m.role IS NULL OR m.role NOT IN ({listed})" if excluded else "true"
    pred = (
        f"SELECT m.bank, m.account, a.typology FROM alert_members m JOIN alerts a ON a.alert_id = m.alert_id "
        f"SEMI JOIN {_ACTIVE} x ON x.bank = m.bank AND x.account = m.account WHERE {keep}"
    )
    rows = _confusion(ws.con, f"SELECT * FROM {_POS}", pred, ("bank", "account"))
    return {"status": "ok", "excluded_roles": list(excluded), "rows": rows}


def _detection_transactions(ws: Workspace, staged: _Staged) -> dict:
    for table in ("alerts", "alert_evidence"):
        reason = _table_state(ws, table, "detection")
        if reason:
            return _absent(reason)
    if not staged.has_transactions:
        return _absent(staged.transactions or "no transaction truth")
    pred = (
        "SELECT e.txn_id, a.typology FROM alert_evidence e JOIN alerts a ON a.alert_id = e.alert_id "
        "SEMI JOIN transactions t ON t.txn_id = e.txn_id"
    )
    truth = f"SELECT txn_id, typology FROM {_FRAUD}"
    return {"status": "ok", "rows": _confusion(ws.con, truth, pred, ("txn_id",))}


# ----------------------------------------------------------------------------------------------
# Account scores


def _scores(ws: Workspace, staged: _Staged) -> dict:
    reason = _table_state(ws, "account_scores", "scoring")
    if reason:
        return _absent(reason)
    if not staged.has_accounts:
        return _absent(staged.accounts or "no account truth")
    con = ws.con
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE ft_eval_scored AS
        SELECT s.bank, s.account, max(CAST(s.score AS DOUBLE)) AS score,
               EXISTS (SELECT 1 FROM {_POS} p WHERE p.bank = s.bank AND p.account = s.account) AS positive
        FROM account_scores s SEMI JOIN {_ACTIVE} x ON x.bank = s.bank AND x.account = s.account
        WHERE s.score IS NOT NULL GROUP BY s.bank, s.account
        """
    ).fetchall()
    try:
        n_pos = _scalar(con, f"SELECT count(*) FROM (SELECT DISTINCT bank, account FROM {_POS})")
        n_active = _scalar(con, f"SELECT count(*) FROM {_ACTIVE}")
        scored, scored_pos = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE positive) FROM ft_eval_scored"
        ).fetchall()[0]
        # Average precision: Σ over distinct score thresholds of precision there × recall gained there.
        ap_sum = _scalar(
            con,
            """
            WITH g AS (SELECT score, count(*) AS n, count(*) FILTER (WHERE positive) AS tp
                       FROM ft_eval_scored GROUP BY score),
                 c AS (SELECT tp, sum(n) OVER (ORDER BY score DESC) AS cn,
                              sum(tp) OVER (ORDER BY score DESC) AS ctp FROM g)
            SELECT sum(tp * ctp / cn) FROM c
            """,
        )
        at_k = []
        for k in K_VALUES:
            top, hits = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE positive) FROM "
                "(SELECT positive FROM ft_eval_scored ORDER BY score DESC, bank, account LIMIT $k)",
                {"k": k},
            ).fetchall()[0]
            at_k.append({"k": k, "over": top, "positives": hits, "precision": _ratio(hits, top)})
    finally:
        con.execute("DROP TABLE IF EXISTS temp.ft_eval_scored").fetchall()
    return {
        "status": "ok",
        "scored_accounts": scored,
        "scored_positives": scored_pos,
        "positive_accounts": n_pos,
        "base_rate": _ratio(n_pos, n_active),
        "pr_auc": _ratio(ap_sum or 0, n_pos),
        "precision_at_k": at_k,
    }


# ----------------------------------------------------------------------------------------------
# Tracing and freezing


def _tracing(ws: Workspace, staged: _Staged, kind: str) -> dict:
    if not staged.has_holdings:  # first: running the stage would not help
        return _absent(staged.holdings or "no holdings truth")
    reason = _table_state(ws, "trace_holdings", "tracing")
    if reason:
        return _absent(reason)
    con = ws.con
    held = ", ".join(f"sum(held_{r}) AS {r}" for r in RULES)
    sums = ", ".join(
        f"sum(coalesce(h.{r}, 0)) AS held_{r}, sum(least(coalesce(h.{r}, 0), coalesce(t.held, 0))) AS match_{r}, "
        f"avg(abs(coalesce(h.{r}, 0) - coalesce(t.held, 0))) AS mae_{r}"
        for r in RULES
    )
    row = con.sql(
        f"""
        WITH h AS (SELECT case_id, bank, account, {held} FROM trace_holdings
                   WHERE case_id IN (SELECT case_id FROM reports) GROUP BY ALL)
        SELECT count(*) AS pairs, sum(coalesce(t.held, 0)) AS truth,
               count(DISTINCT h.case_id) AS cases_traced, {sums}
        FROM {_HOLD} t FULL OUTER JOIN h
          ON t.case_id = h.case_id AND t.bank = h.bank AND t.account = h.account
        """
    ).fetchall()[0]
    names = ["pairs", "truth", "cases_traced"] + [f"{m}_{r}" for r in RULES for m in ("held", "match", "mae")]
    v = dict(zip(names, row, strict=True))
    rows = []
    for r in RULES:
        recall = _ratio(v[f"match_{r}"], v["truth"])
        precision = _ratio(v[f"match_{r}"], v[f"held_{r}"])
        rows.append(
            {
                "rule": r,
                "held": _money(v[f"held_{r}"]),
                "truth": _money(v["truth"]),
                "matched": _money(v[f"match_{r}"]),
                "money_recall": recall,
                "money_precision": precision,
                "money_f1": _f1(precision, recall),
                "mae": _money(v[f"mae_{r}"]),
            }
        )
    scored = [r for r in rows if r["mae"] is not None]
    closest = min(scored, key=lambda r: r["mae"])["rule"] if scored else None
    return {
        "status": "ok",
        "cases_reported": _scalar(con, "SELECT count(DISTINCT case_id) FROM reports"),
        "cases_traced": v["cases_traced"],
        "pairs": v["pairs"],
        "rows": rows,
        "closest": closest,
    }


def _freeze(ws: Workspace, staged: _Staged, kind: str) -> dict:
    if not staged.has_holdings:  # first: running the stage would not help
        return _absent(staged.holdings or "no holdings truth")
    reason = _table_state(ws, "freeze_list", "the freeze list")
    if reason:
        return _absent(reason)
    row = ws.con.execute(
        f"""
        WITH t AS (SELECT bank, account, sum(held) AS held FROM {_HOLD} GROUP BY ALL),
             f AS (SELECT bank, account, sum(CAST(amount_to_freeze AS DECIMAL(18, 4))) AS frozen
                   FROM freeze_list GROUP BY ALL)
        SELECT sum(coalesce(t.held, 0)), sum(coalesce(f.frozen, 0)),
               sum(least(coalesce(t.held, 0), coalesce(f.frozen, 0))),
               count(f.account), count(t.account), count(*) FILTER (WHERE t.held > 0 AND f.frozen > 0)
        FROM t FULL OUTER JOIN f ON t.bank = f.bank AND t.account = f.account
        """
    ).fetchall()[0]
    truth, frozen, covered, n_frozen, n_truth, n_both = row
    return {
        "status": "ok",
        "accounts_frozen": n_frozen,
        "accounts_holding_victims_money": n_truth,
        "accounts_both": n_both,
        "frozen": _money(frozen),
        "truth": _money(truth),
        "covered": _money(covered),
        "money_recall": _ratio(covered, truth),
        "money_precision": _ratio(covered, frozen),
    }
