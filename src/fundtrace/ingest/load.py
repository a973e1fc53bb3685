"""Validated, atomic batch loading.

One file is one batch and one DuckDB transaction: every row is either kept, skipped as already
loaded (same key, same content), or rejected with its line and a reason code; the kept rows land
together with the batch record and the rejects, or nothing does. A process killed mid-load leaves the
workspace as it was, because DuckDB commits the transaction as a whole or not at all.

The work runs inside DuckDB: the file is parsed once into a typed staging table (column values
checked by SQL expressions), and the checks that need the whole batch or the workspace (duplicates,
conflicts, unknown references) are joins on that table.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import duckdb

from fundtrace.config import LoadSettings
from fundtrace.errors import InputError, RejectRateExceeded, UsageError
from fundtrace.ingest.files import InputFile, expand, inspect
from fundtrace.ingest.profiles import Mapping, ident, literal, mapping_for
from fundtrace.schema import CHANNELS, CURRENCIES, KINDS, LINK_KINDS, Column, Kind
from fundtrace.workspace import Workspace

SEP = "chr(31)"
# DuckDB's CSV reader error types -> our reason codes.
_CSV_ERRORS = {
    "INVALID ENCODING": "bad_encoding",
    "INVALID UNICODE": "bad_encoding",
    "TOO MANY COLUMNS": "wrong_column_count",
    "MISSING COLUMNS": "wrong_column_count",
    "UNQUOTED VALUE": "malformed_row",
    "LINE SIZE OVER MAXIMUM": "line_too_long",
}
REJECTS_SHOWN = 20

Progress = Callable[[str], None]


@dataclass
class BatchResult:
    """What happened to one file."""

    path: str
    kind: str
    sha256: str
    batch_id: int | None = None
    status: str = "loaded"  # loaded | already_loaded | failed
    rows_in: int = 0
    rows_kept: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0
    rows_updated: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    rejects: list[dict] = field(default_factory=list)  # the first few, for display

    def as_dict(self) -> dict:
        return asdict(self)


def load_paths(
    ws: Workspace,
    kind: str,
    patterns: list[str],
    *,
    settings: LoadSettings,
    profile: str = "native",
    delimiter: str | None = None,
    progress: Progress | None = None,
) -> list[BatchResult]:
    """Load every file matched by ``patterns`` as ``kind``; each file is its own atomic batch.

    All files are inspected before any is loaded, so a bad file named last fails the command
    before the first file is written.
    """
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    if delimiter is not None and len(delimiter.encode()) != 1:
        raise UsageError(f"--delimiter must be one character, got {delimiter!r}")
    prepared = [_prepare(ws, KINDS[kind], inspect(p), profile, delimiter) for p in expand(patterns)]
    results = []
    for plan in prepared:
        if progress:
            progress(f"{kind}: {plan.file.path.name}")
        results.append(_load_file(ws, plan, settings, progress))
    return results


@dataclass
class _Plan:
    """A file that passed the up-front checks, and how to read it."""

    kind: Kind
    file: InputFile
    profile: str
    delimiter: str | None
    source: str
    params: dict
    source_columns: list[str]
    mapping: Mapping


def _prepare(ws: Workspace, kind: Kind, f: InputFile, profile: str, delimiter: str | None) -> _Plan:
    """Read the header or schema and check the columns, before anything is written."""
    source, params = _source_sql(f, delimiter)
    try:
        described = ws.con.execute(f"DESCRIBE SELECT * FROM {source}", params).fetchall()
    except duckdb.Error as exc:
        raise InputError(f"{f.path}: cannot read as {f.format.upper()}: {_first_line(exc)}") from None
    source_columns = [row[0] for row in described if row[0] != "file_row_number"]
    mapping = mapping_for(profile, kind.name, source_columns, kind.names)
    _check_columns(f, kind, mapping, source_columns)
    return _Plan(kind, f, profile, delimiter, source, params, source_columns, mapping)


def _load_file(ws: Workspace, plan: _Plan, settings: LoadSettings, progress: Progress | None) -> BatchResult:
    kind, f, mapping, profile = plan.kind, plan.file, plan.mapping, plan.profile
    result = BatchResult(str(f.path), kind.name, f.sha256)
    seen = ws.con.execute(
        "SELECT batch_id FROM batches WHERE sha256 = ? AND kind = ?", [f.sha256, kind.name]
    ).fetchall()
    if seen:
        result.status, result.batch_id = "already_loaded", seen[0][0]
        return result

    step = _Steps(progress)
    step("reading and checking values")
    # The staging table is temporary (never in the workspace file) and is built outside the batch's
    # transaction so that its rowids count the file's rows from 0 in file order.
    con = ws.con
    for name in ("ft_stage", "ft_reject_errors", "ft_reject_scans"):
        con.execute(f"DROP TABLE IF EXISTS temp.{name}")
    stage_sql = _stage_sql(kind, mapping, settings, plan.source, plan.source_columns, f, plan.delimiter)
    try:
        con.execute(stage_sql, plan.params)
    except duckdb.Error as exc:
        raise InputError(f"{f.path}: {_first_line(exc)}") from None
    with ws.transaction() as con:
        batch_id = con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM batches").fetchall()[0][0]
        result.batch_id = batch_id

        structural = _structural_rejects(con, f)
        if kind.name == "transactions":
            _number_derived_ids(con)
        step("checking duplicates and references")
        _mark_batch_duplicates(con, kind)
        result.rows_duplicate, result.rows_updated = _mark_existing(con, kind)
        _mark_unknown_references(con, kind)

        staged = con.execute("SELECT count(*) FROM ft_stage").fetchall()[0][0]
        result.rows_in = staged + len(structural)
        rejects = structural + _semantic_rejects(con, f, structural)
        result.rows_rejected = len(rejects)
        result.rows_kept = staged - result.rows_duplicate - (len(rejects) - len(structural))
        for r in rejects:
            result.reasons[r["reason"]] = result.reasons.get(r["reason"], 0) + 1
        result.rejects = sorted(rejects, key=lambda r: r["line"] or 0)[:REJECTS_SHOWN]
        if result.rows_in and result.rows_rejected / result.rows_in > settings.max_reject_rate:
            result.status = "failed"
            raise RejectRateExceeded(
                f"{f.path}: {result.rows_rejected} of {result.rows_in} rows rejected "
                f"({result.rows_rejected / result.rows_in:.1%} > --max-reject-rate "
                f"{settings.max_reject_rate:.1%}); nothing was loaded",
                rejects=result.rejects,
            )
        step(f"writing {result.rows_kept:,} rows")
        _write(con, kind, batch_id, profile, mapping, result, rejects, f)
    return result


class _Steps:
    def __init__(self, progress: Progress | None):
        self.progress = progress

    def __call__(self, what: str) -> None:
        if self.progress:
            self.progress(what)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def _source_sql(f: InputFile, delimiter: str | None) -> tuple[str, dict]:
    """The table function reading ``f``, with the path bound as a parameter."""
    params: dict = {"path": str(f.path)}
    if f.format == "parquet":
        return "read_parquet($path, file_row_number = true)", params
    options = [
        "header = true",
        "all_varchar = true",
        "store_rejects = true",
        "rejects_table = 'ft_reject_errors'",
        "rejects_scan = 'ft_reject_scans'",
        "encoding = 'utf-8'",
    ]
    if delimiter is not None:
        options.append("delim = $delim")
        params["delim"] = delimiter
    return f"read_csv($path, {', '.join(options)})", params


def _check_columns(f: InputFile, kind: Kind, mapping: Mapping, source_columns: list[str]) -> None:
    present = set(source_columns)
    missing = [c for c in mapping.requires if c not in present]
    missing += [c.name for c in kind.columns if c.required and c.name not in mapping.columns]
    if kind.name == "reports" and not ({"txn_id", "first_account"} & set(mapping.columns)):
        missing.append("txn_id or first_account")
    if missing:
        raise InputError(
            f"{f.path}: missing required column(s) {', '.join(missing)} for {kind.name} "
            f"(found: {', '.join(source_columns) or 'none'})"
        )


def _text(expr: str) -> str:
    return f"NULLIF(trim(CAST({expr} AS VARCHAR)), '')"


# An ISO 8601 offset or Z at the end: only such strings need the slower time-zone-aware parse
# (a plain TIMESTAMP cast would silently drop the offset).
_HAS_OFFSET = "regexp_matches({t}, '(Z|[+-][0-9][0-9](:?[0-9][0-9])?)$')"


def _value_and_problem(col: Column, settings: LoadSettings, kind: Kind) -> tuple[str, str]:
    """SQL for the typed value of ``col`` over its text ``{t}``, and for its problem
    (``code<US>detail``, NULL if fine) over ``{t}`` and the value ``{v}``."""
    shown = f"'{col.name}=' || coalesce({{t}}, '')"
    missing = f"WHEN {{t}} IS NULL THEN 'missing_field' || {SEP} || '{col.name}'" if col.required else ""
    bad_if_unparsed = f"CASE {missing} WHEN {{t}} IS NOT NULL AND {{v}} IS NULL THEN '{{code}}' || {SEP} || {shown} END"

    if col.type == "timestamp":
        value = (
            f"CASE WHEN {_HAS_OFFSET} THEN CAST(TRY_CAST({{t}} AS TIMESTAMPTZ) AS TIMESTAMP) "
            "ELSE TRY_CAST({t} AS TIMESTAMP) END"
        )
        problem = bad_if_unparsed.replace("{code}", "bad_timestamp")
    elif col.type == "money":
        value = "TRY_CAST({t} AS DECIMAL(18, 4))"
        as_double = "TRY_CAST({t} AS DOUBLE)"
        sign = f"WHEN {{v}} <= 0 THEN 'non_positive_amount' || {SEP} || {shown}" if col.positive else ""
        problem = (
            f"CASE {missing} WHEN {{t}} IS NULL THEN NULL "
            f"WHEN {as_double} IS NULL THEN 'bad_number' || {SEP} || {shown} "
            f"WHEN isnan({as_double}) OR isinf({as_double}) THEN 'non_finite_amount' || {SEP} || {shown} "
            f"WHEN {{v}} IS NULL THEN 'bad_number' || {SEP} || {shown} || ' (out of range)' {sign} END"
        )
    elif col.type == "integer":
        value = "TRY_CAST({t} AS BIGINT)"
        problem = bad_if_unparsed.replace("{code}", "bad_number")
    elif col.type == "choice":
        normal = "replace(replace(lower({t}), '-', '_'), ' ', '_')"
        if col.name == "currency":
            allowed = sorted(CURRENCIES | {c.upper() for c in settings.extra_currencies})
            value, code = f"coalesce(upper({{t}}), {literal(settings.currency)})", "unknown_currency"
        elif col.name == "channel":
            allowed, value, code = list(CHANNELS), f"coalesce({normal}, 'transfer')", "unknown_channel"
        else:  # a link kind
            allowed, value, code = list(LINK_KINDS), normal, "unknown_kind"
        inlist = ", ".join(literal(a) for a in allowed)
        problem = f"CASE {missing} WHEN {{v}} NOT IN ({inlist}) THEN '{code}' || {SEP} || {shown} END"
    else:
        value = "{t}"
        # A missing bank is the default bank, except for a report's optional victim or first account.
        if col.name.endswith("bank") and col.name not in ("victim_bank",):
            value = f"coalesce({{t}}, {literal(settings.default_bank)})"
        problem = f"CASE {missing} END" if missing else "NULL"
    return value, problem


def _stage_sql(
    kind: Kind,
    mapping: Mapping,
    settings: LoadSettings,
    source: str,
    source_columns: list[str],
    f: InputFile,
    delimiter: str | None,
) -> str:
    """CREATE TEMP TABLE ft_stage: typed native columns, ``problem`` (``code<US>detail`` or NULL),
    ``raw_row`` (only for rows with a problem), ``ord`` (Parquet row number) and label columns.

    Built as stacked projections (text, then typed value, then problem, then output) so that each
    value is parsed once per row."""
    texts, values, problems, out = [], [], [], []
    for col in kind.columns:
        t, v = ident(f"ft__t_{col.name}"), ident(f"ft__v_{col.name}")
        expr = mapping.columns.get(col.name)
        texts.append(f"{_text(expr) if expr else 'CAST(NULL AS VARCHAR)'} AS {t}")
        value, problem = _value_and_problem(col, settings, kind)
        values.append(f"{value.replace('{t}', t)} AS {v}")
        problems.append(problem.replace("{t}", t).replace("{v}", v))
        out.append(f"{v} AS {ident(col.name)}")
    if kind.name == "reports":
        given = [ident(f"ft__t_{c}") for c in ("txn_id", "first_account")]
        problems.append(
            f"CASE WHEN coalesce({', '.join(given)}) IS NULL "
            f"THEN 'missing_field' || {SEP} || 'txn_id or first_account' END"
        )
    out += [f"{expr} AS {ident('label_' + name)}" for name, expr in mapping.labels.items()]
    raw = ", ".join(f"coalesce(CAST({ident(c)} AS VARCHAR), '')" for c in source_columns)
    order = "file_row_number" if f.format == "parquet" else "CAST(NULL AS BIGINT)"
    out += [
        "ft__problem AS problem",
        f"CASE WHEN ft__problem IS NOT NULL THEN concat_ws({literal(delimiter or ',')}, {raw}) END AS raw_row",
        f"{order} AS ord",
        "CAST(NULL AS VARCHAR) AS existing",
    ]
    if kind.name == "transactions":
        # A row without txn_id gets one from its content; identical rows are numbered later.
        content = (
            f"concat_ws({SEP}, strftime(ft__v_ts, '%Y-%m-%dT%H:%M:%S.%f'), ft__v_src_bank, ft__v_src_account, "
            "ft__v_dst_bank, ft__v_dst_account, CAST(ft__v_amount AS VARCHAR), ft__v_currency, ft__v_channel)"
        )
        out[0] = f"coalesce(ft__v_txn_id, 'h' || substr(md5({content}), 1, 20)) AS txn_id"
        out.append("ft__v_txn_id IS NULL AS derived_id")
    nl = ",\n  "
    return (
        f"CREATE TEMP TABLE ft_stage AS\nSELECT\n  {nl.join(out)}\nFROM (\n"
        f"SELECT *, coalesce({', '.join(problems)}) AS ft__problem FROM (\n"
        f"SELECT *, {', '.join(values)} FROM (\n"
        f"SELECT *, {', '.join(texts)} FROM {source})))"
    )


def _structural_rejects(con: duckdb.DuckDBPyConnection, f: InputFile) -> list[dict]:
    """Rows DuckDB's CSV reader could not split into the header's columns."""
    if f.format != "csv":
        return []
    rows = con.execute(
        "SELECT line, any_value(CAST(error_type AS VARCHAR)), any_value(csv_line), any_value(error_message) "
        "FROM ft_reject_errors GROUP BY line ORDER BY line"
    ).fetchall()
    return [
        {
            "file": str(f.path),
            "line": int(line),
            "reason": _CSV_ERRORS.get(etype, "malformed_row"),
            "detail": (message or "").splitlines()[0][:200],
            "raw": raw,
        }
        for line, etype, raw, message in rows
    ]


def _number_derived_ids(con: duckdb.DuckDBPyConnection) -> None:
    """Identical rows without txn_id are distinct transfers: suffix the 2nd, 3rd ... occurrence."""
    con.execute(
        """
        UPDATE ft_stage SET txn_id = ft_stage.txn_id || '-' || n.rn
        FROM (
            SELECT rowid AS rid, row_number() OVER (PARTITION BY txn_id ORDER BY rowid) AS rn
            FROM ft_stage
            WHERE derived_id AND txn_id IN (
                SELECT txn_id FROM ft_stage WHERE derived_id GROUP BY txn_id HAVING count(*) > 1)
        ) n
        WHERE ft_stage.rowid = n.rid AND n.rn > 1
        """
    )


def _key_match(kind: Kind, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{ident(k)} IS NOT DISTINCT FROM {right}.{ident(k)}" for k in kind.key)


def _mark_batch_duplicates(con: duckdb.DuckDBPyConnection, kind: Kind) -> None:
    """The second and later rows with one key in one batch are rejected; the first is kept."""
    keys = ", ".join(ident(k) for k in kind.key)
    dup = con.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM ft_stage WHERE problem IS NULL GROUP BY {keys} HAVING count(*) > 1)"
    ).fetchall()[0][0]
    if not dup:
        return
    shown = " || ', ' || ".join(f"'{k}=' || coalesce(CAST({ident(k)} AS VARCHAR), '')" for k in kind.key)
    con.execute(
        f"""
        UPDATE ft_stage SET problem = 'duplicate_in_batch' || {SEP} || d.shown
        FROM (
            SELECT rowid AS rid, {shown} AS shown,
                   row_number() OVER (PARTITION BY {keys} ORDER BY rowid) AS rn
            FROM ft_stage WHERE problem IS NULL
        ) d
        WHERE ft_stage.rowid = d.rid AND d.rn > 1
        """
    )


def _mark_existing(con: duckdb.DuckDBPyConnection, kind: Kind) -> tuple[int, int]:
    """Rows whose key is already in the workspace: same content is skipped, other content is a
    conflict (rejected) or, for the account registry, an update. Returns (skipped, updated)."""
    same = " AND ".join(f"s.{ident(c)} IS NOT DISTINCT FROM t.{ident(c)}" for c in kind.names)
    con.execute(
        f"""
        UPDATE ft_stage SET existing = m.state
        FROM (
            SELECT s.rowid AS rid, CASE WHEN {same} THEN 'same' ELSE 'different' END AS state
            FROM ft_stage s JOIN {ident(kind.table)} t ON {_key_match(kind, "s", "t")}
            WHERE s.problem IS NULL
        ) m
        WHERE ft_stage.rowid = m.rid
        """
    )
    if kind.on_existing == "reject":
        shown = " || ', ' || ".join(f"'{k}=' || coalesce(CAST({ident(k)} AS VARCHAR), '')" for k in kind.key)
        con.execute(
            f"UPDATE ft_stage SET problem = 'conflict' || {SEP} || {shown} || "
            "' is already in the workspace with other values' WHERE existing = 'different'"
        )
    counts = con.execute(
        "SELECT count(*) FILTER (existing = 'same'), count(*) FILTER (existing = 'different' AND problem IS NULL) "
        "FROM ft_stage"
    ).fetchall()[0]
    return counts[0], counts[1]


def _known_account(column_bank: str, column_account: str) -> str:
    """SQL: is (bank, account) in the registry or in any transaction?"""
    key = f"account_key({column_bank}, {column_account})"
    return (
        f"({key} IN (SELECT account_id FROM accounts) OR {key} IN (SELECT src_id FROM transactions) "
        f"OR {key} IN (SELECT dst_id FROM transactions))"
    )


def _mark_unknown_references(con: duckdb.DuckDBPyConnection, kind: Kind) -> None:
    """Links must name an account the workspace knows; reports a known payment or account."""
    if kind.name == "links":
        con.execute(
            f"UPDATE ft_stage SET problem = 'unknown_account' || {SEP} || bank || ':' || account "
            f"WHERE problem IS NULL AND NOT {_known_account('bank', 'account')}"
        )
    elif kind.name == "reports":
        con.execute(
            f"UPDATE ft_stage SET problem = 'unknown_txn' || {SEP} || 'txn_id=' || txn_id "
            "WHERE problem IS NULL AND txn_id IS NOT NULL "
            "AND txn_id NOT IN (SELECT txn_id FROM transactions)"
        )
        con.execute(
            f"UPDATE ft_stage SET problem = 'unknown_account' || {SEP} || first_bank || ':' || first_account "
            "WHERE problem IS NULL AND txn_id IS NULL AND first_account IS NOT NULL "
            f"AND NOT {_known_account('first_bank', 'first_account')}"
        )


def _semantic_rejects(con: duckdb.DuckDBPyConnection, f: InputFile, structural: list[dict]) -> list[dict]:
    """Rows that parsed but failed a check, with their line in the file."""
    rows = con.execute(
        "SELECT rowid, ord, problem, raw_row FROM ft_stage WHERE problem IS NOT NULL ORDER BY rowid"
    ).fetchall()
    skipped_lines = [r["line"] for r in structural]
    out = []
    for rowid, ord_, problem, raw in rows:
        reason, _, detail = problem.partition("\x1f")
        line = int(ord_) + 1 if ord_ is not None else _csv_line(int(rowid), skipped_lines)
        out.append({"file": str(f.path), "line": line, "reason": reason, "detail": detail, "raw": raw})
    return out


def _csv_line(ordinal: int, rejected_lines: list[int]) -> int:
    """Record number (header = 1) of the ``ordinal``-th row DuckDB parsed, given the records it
    rejected: the staging table keeps file order, rejected records leave gaps in it."""
    line = ordinal + 2
    for r in rejected_lines[: bisect.bisect_right(rejected_lines, line + len(rejected_lines))]:
        if r <= line:
            line += 1
    return line


def _write(
    con: duckdb.DuckDBPyConnection,
    kind: Kind,
    batch_id: int,
    profile: str,
    mapping: Mapping,
    result: BatchResult,
    rejects: list[dict],
    f: InputFile,
) -> None:
    keep = "problem IS NULL AND existing IS DISTINCT FROM 'same'"
    cols = [ident(c) for c in kind.names]
    if kind.on_existing == "update":
        con.execute(
            f"DELETE FROM {ident(kind.table)} t WHERE EXISTS (SELECT 1 FROM ft_stage s "
            f"WHERE s.existing = 'different' AND s.problem IS NULL AND {_key_match(kind, 's', 't')})"
        )
    if kind.name == "transactions":
        con.execute(
            f"INSERT INTO transactions (txn_id, ts, src_bank, src_account, dst_bank, dst_account, src_id, dst_id, "
            "amount, currency, channel, batch_id) "
            "SELECT txn_id, ts, src_bank, src_account, dst_bank, dst_account, account_key(src_bank, src_account), "
            f"account_key(dst_bank, dst_account), amount, currency, channel, ? FROM ft_stage WHERE {keep}",
            [batch_id],
        )
    elif kind.name in ("accounts", "links"):
        con.execute(
            f"INSERT INTO {kind.table} ({', '.join(cols)}, account_id, batch_id) "
            f"SELECT {', '.join(cols)}, account_key(bank, account), ? FROM ft_stage WHERE {keep}",
            [batch_id],
        )
    else:
        con.execute(
            f"INSERT INTO {kind.table} ({', '.join(cols)}, batch_id) "
            f"SELECT {', '.join(cols)}, ? FROM ft_stage WHERE {keep}",
            [batch_id],
        )
    if mapping.labels and kind.name == "transactions":
        alert = "CAST(label_alert_id AS VARCHAR)" if "alert_id" in mapping.labels else "NULL"
        con.execute(
            f"INSERT INTO labels (source, entity, txn_id, bank, account, is_fraud, alert_id, typology, batch_id) "
            f"SELECT ?, 'transaction', txn_id, NULL, NULL, coalesce(label_is_fraud, false), {alert}, NULL, ? "
            f"FROM ft_stage WHERE {keep}",
            [profile, batch_id],
        )
    con.execute(
        "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            batch_id, kind.name, profile, str(f.path), f.sha256, datetime.now(UTC).replace(tzinfo=None),
            result.rows_in, result.rows_kept, result.rows_rejected, result.rows_duplicate, result.rows_updated,
        ],
    )  # fmt: skip
    if rejects:
        con.executemany(
            "INSERT INTO rejects VALUES (?, ?, ?, ?, ?, ?)",
            [[batch_id, r["file"], r["line"], r["reason"], r["detail"], r["raw"]] for r in rejects],
        )
