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

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import duckdb

from fundtrace.config import LoadSettings
from fundtrace.errors import ConfigError, InputError, RejectRateExceeded, UsageError
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
# Prefix of txn ids derived from a row's content when the source has none.
DERIVED_PREFIX = "auto-"

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
    try:
        ws.con.execute("SET memory_limit = $m", {"m": settings.memory_limit}).fetchall()
    except duckdb.Error as exc:
        raise ConfigError([("load.memory_limit", _first_line(exc))]) from None
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
    source_types: dict[str, str]


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
    types = {row[0]: str(row[1]).upper() for row in described}
    return _Plan(kind, f, profile, delimiter, source, params, source_columns, mapping, types)


def _load_file(ws: Workspace, plan: _Plan, settings: LoadSettings, progress: Progress | None) -> BatchResult:
    kind, f = plan.kind, plan.file
    result = BatchResult(str(f.path), kind.name, f.sha256)
    seen = ws.con.execute(
        "SELECT batch_id FROM batches WHERE sha256 = ? AND kind = ?", [f.sha256, kind.name]
    ).fetchall()
    if seen:
        result.status, result.batch_id = "already_loaded", seen[0][0]
        return result

    step = progress or (lambda _: None)
    con = ws.con
    for name in ("ft_reject_errors", "ft_reject_scans", "ft_key_rejects"):
        con.execute(f"DROP TABLE IF EXISTS temp.{name}")
    with ws.transaction() as con:
        batch_id = con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM batches").fetchall()[0][0]
        result.batch_id = batch_id
        had_rows = bool(
            con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {ident(kind.table)} LIMIT 1)").fetchall()[0][0]
        )
        # Rows that pass every per-row check stream straight into the table, in file order; the
        # checks that need the whole batch run afterwards on the batch's rows, inside the same
        # transaction, and remove what they reject. Lines are looked up only when something failed.
        step("reading, checking and writing rows")
        failed_row_checks = _insert_rows(con, plan, settings, batch_id)
        structural = _structural_rejects(con, f)
        step("checking duplicates and references")
        # Identical derived ids and in-batch duplicates both show as a repeated key hash; a batch
        # without one (the usual case) needs neither numbering nor the exact duplicate check.
        repeats = _key_hash_repeats(con, kind, batch_id)
        if repeats and kind.name == "transactions":
            _number_derived_ids(con, batch_id, labels=bool(plan.mapping.labels))
        _create_key_rejects(con, kind)
        if repeats:
            _reject_batch_duplicates(con, kind, batch_id)
        if had_rows:
            result.rows_duplicate, result.rows_updated = _resolve_existing(con, kind, batch_id)
        _reject_unknown_references(con, kind, batch_id)
        if plan.mapping.labels and kind.name == "transactions":
            con.execute(
                "DELETE FROM labels WHERE batch_id = ? AND txn_id NOT IN "
                "(SELECT txn_id FROM transactions WHERE batch_id = ?)",
                [batch_id, batch_id],
            )
        key_rejects = con.execute("SELECT count(*) FROM ft_key_rejects").fetchall()[0][0]
        row_rejects = _locate_rejects(con, plan, settings, structural) if failed_row_checks or key_rejects else []
        rejects = structural + row_rejects

        result.rows_kept = con.execute(
            f"SELECT count(*) FROM {ident(kind.table)} WHERE batch_id = ?", [batch_id]
        ).fetchall()[0][0]
        result.rows_rejected = len(rejects)
        result.rows_in = result.rows_kept + result.rows_rejected + result.rows_duplicate
        if result.rows_in == 0:
            raise InputError(f"{f.path}: no data rows (only a header)")
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
        _record_batch(con, plan, batch_id, result, rejects)
    return result


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


def _text(expr: str, col: Column) -> str:
    """The column's value as text. Identifiers and codes are trimmed (only when they have outer
    blanks: trim on every row is the costliest step of a load); numbers and times are not, since
    their casts ignore outer blanks."""
    text = f"CAST({expr} AS VARCHAR)"
    if col.type in ("timestamp", "money", "integer"):
        return text
    return (
        f"CASE WHEN {text} LIKE ' %' OR {text} LIKE '% ' OR {text} = '' THEN NULLIF(trim({text}), '') ELSE {text} END"
    )


# An ISO 8601 offset or Z at the end: only such strings need the slower time-zone-aware parse
# (a plain TIMESTAMP cast would silently drop the offset).
# Checked only past 19 characters ('2024-03-01 09:05:00'), so plain timestamps skip the regex.
_HAS_OFFSET = "(length({t}) > 19 AND regexp_matches({t}, '(Z|[+-][0-9][0-9](:?[0-9][0-9])?)$'))"


def _value_and_problem(
    col: Column, settings: LoadSettings, kind: Kind, native: str | None
) -> tuple[str, str, str | None]:
    """SQL for the typed value of ``col`` over its input ``{t}``, for its problem (``code<US>detail``,
    NULL if fine) over ``{t}`` and the value ``{v}``, and for an optional flag ``{k}`` over ``{t}``
    that both may use (computed once per row, beside the text). ``{t}`` is text, or the source's own
    value when ``native`` names a Parquet type that needs no parsing."""
    shown = f"'{col.name}=' || coalesce(CAST({{t}} AS VARCHAR), '')"
    missing = f"WHEN {{t}} IS NULL THEN 'missing_field' || {SEP} || '{col.name}'" if col.required else ""
    bad_if_unparsed = f"CASE {missing} WHEN {{t}} IS NOT NULL AND {{v}} IS NULL THEN '{{code}}' || {SEP} || {shown} END"

    if col.type == "timestamp" and native:  # TIMESTAMP, TIMESTAMP WITH TIME ZONE (to UTC), DATE
        value = "CAST({t} AS TIMESTAMP)"
        problem = bad_if_unparsed.replace("{code}", "bad_timestamp")
    elif col.type == "timestamp":
        value = (
            f"CASE WHEN {_HAS_OFFSET} THEN CAST(TRY_CAST({{t}} AS TIMESTAMPTZ) AS TIMESTAMP) "
            "ELSE TRY_CAST({t} AS TIMESTAMP) END"
        )
        problem = bad_if_unparsed.replace("{code}", "bad_timestamp")
    elif col.type == "money":
        value = "TRY_CAST({t} AS DECIMAL(18, 4))"
        as_double = "{d}"  # TRY_CAST({t} AS DOUBLE), computed once in the value layer
        sign = (
            f"WHEN {{v}} <= 0 AND {as_double} > 0 THEN 'amount_below_resolution' || {SEP} || {shown} "
            "|| ' (money is kept to 4 decimal places: this rounds to 0)' "
            f"WHEN {{v}} <= 0 THEN 'non_positive_amount' || {SEP} || {shown}"
            if col.positive
            else ""
        )
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
        # {k}: the text is already an allowed code as it stands (nearly every row), so it needs no
        # normalising and no further membership test. Tested first against the likeliest code
        # (a plain equality), then against the list; both far cheaper than a hash-join membership
        # test per row, or than lower()/replace() per row.
        normal = "replace(replace(lower({t}), '-', '_'), ' ', '_')"
        if col.name == "currency":
            allowed = sorted(CURRENCIES | {c.upper() for c in settings.extra_currencies})
            likely, default, fix, code = (
                settings.currency.upper(),
                literal(settings.currency),
                "upper({t})",
                "unknown_currency",
            )
        elif col.name == "channel":
            allowed, likely, default, fix, code = list(CHANNELS), CHANNELS[0], "'transfer'", normal, "unknown_channel"
        else:  # a link kind
            allowed, likely, default, fix, code = list(LINK_KINDS), LINK_KINDS[0], "NULL", normal, "unknown_kind"
        codes = "[" + ", ".join(literal(a) for a in allowed) + "]"
        flag = f"CASE WHEN {{t}} = {literal(likely)} THEN true ELSE list_contains({codes}, {{t}}) END"
        value = f"CASE WHEN {{k}} THEN {{t}} WHEN {{t}} IS NULL THEN {default} ELSE {fix} END"
        problem = (
            f"CASE {missing} WHEN {{k}} THEN NULL "
            f"WHEN {{v}} IS NOT NULL AND NOT list_contains({codes}, {{v}}) THEN '{code}' || {SEP} || {shown} END"
        )
        return value, problem, flag
    else:
        value = "{t}"
        # A missing bank is the default bank, except for a report's optional victim or first account.
        if col.name.endswith("bank") and col.name not in ("victim_bank",):
            value = f"coalesce({{t}}, {literal(settings.default_bank)})"
        problem = f"CASE {missing} END" if missing else "NULL"
    return value, problem, None


_NATIVE_TYPES = {
    "timestamp": ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "TIMESTAMP WITH TIME ZONE", "DATE"),
    "money": ("DOUBLE", "FLOAT", "BIGINT", "INTEGER", "HUGEINT", "SMALLINT", "DECIMAL"),
}


def _native_type(col: Column, expr: str | None, types: dict[str, str]) -> str | None:
    """The source type of a column read as-is from Parquet when its values need no parsing."""
    if not expr or col.type not in _NATIVE_TYPES:
        return None
    source = next((name for name in types if ident(name) == expr), None)
    kind = types.get(source, "") if source else ""
    return kind if kind.split("(")[0] in _NATIVE_TYPES[col.type] else None


def _select_sql(plan: _Plan, settings: LoadSettings, *, raw_for_all: bool = False) -> str:
    """SELECT over the source: typed native columns, ``problem`` (``code<US>detail`` or NULL),
    ``raw_row`` (the source row as text; only where there is a problem unless ``raw_for_all``),
    ``ord`` (Parquet row number) and label columns.

    Built as stacked projections (text, then flags, then typed value, then problem, then output) so that each
    value is parsed once per row."""
    kind, mapping = plan.kind, plan.mapping
    texts, flags, values, problems, out = [], [], [], [], []
    for col in kind.columns:
        t, v = ident(f"ft__t_{col.name}"), ident(f"ft__v_{col.name}")
        expr = mapping.columns.get(col.name)
        native = _native_type(col, expr, plan.source_types)
        text = expr if native else _text(expr, col) if expr else "CAST(NULL AS VARCHAR)"
        texts.append(f"{text} AS {t}")
        value, problem, flag = _value_and_problem(col, settings, kind, native)
        if flag:
            k = ident(f"ft__k_{col.name}")
            flags.append(f"{flag.replace('{t}', t)} AS {k}")
            value, problem = value.replace("{k}", k), problem.replace("{k}", k)
        values.append(f"{value.replace('{t}', t)} AS {v}")
        if col.type == "money":
            d = ident(f"ft__d_{col.name}")
            values.append(f"TRY_CAST({t} AS DOUBLE) AS {d}")
            problem = problem.replace("{d}", d)
        problems.append(problem.replace("{t}", t).replace("{v}", v))
        out.append(f"{v} AS {ident(col.name)}")
    if kind.name == "reports":
        given = [ident(f"ft__t_{c}") for c in ("txn_id", "first_account")]
        problems.append(
            f"CASE WHEN coalesce({', '.join(given)}) IS NULL "
            f"THEN 'missing_field' || {SEP} || 'txn_id or first_account' END"
        )
    if kind.name == "transactions":
        # A row without txn_id gets one from its content; identical rows are numbered after insert.
        content = (
            f"concat_ws({SEP}, strftime(ft__v_ts, '%Y-%m-%dT%H:%M:%S.%f'), ft__v_src_bank, ft__v_src_account, "
            "ft__v_dst_bank, ft__v_dst_account, CAST(ft__v_amount AS VARCHAR), ft__v_currency, ft__v_channel)"
        )
        out[0] = f"coalesce(ft__v_txn_id, '{DERIVED_PREFIX}' || substr(md5({content}), 1, 20)) AS txn_id"
    out += [f"{expr} AS {ident('label_' + name)}" for name, expr in mapping.labels.items()]
    out += [f"{expr} AS {ident('received_' + name)}" for name, expr in mapping.received.items()]
    raw = (
        f"concat_ws({literal(plan.delimiter or ',')}, "
        + ", ".join(f"coalesce(CAST({ident(c)} AS VARCHAR), '')" for c in plan.source_columns)
        + ")"
    )
    out += [
        "ft__problem AS problem",
        (raw if raw_for_all else f"CASE WHEN ft__problem IS NOT NULL THEN {raw} END") + " AS raw_row",
        ("file_row_number" if plan.file.format == "parquet" else "CAST(NULL AS BIGINT)") + " AS ord",
    ]
    nl = ",\n  "
    return (
        f"SELECT\n  {nl.join(out)}\nFROM (\n"
        f"SELECT *, coalesce({', '.join(problems)}) AS ft__problem FROM (\n"
        f"SELECT *, {', '.join(values)} FROM (\n"
        + (f"SELECT *, {', '.join(flags)} FROM (\n" if flags else "")
        + f"SELECT *, {', '.join(texts)} FROM {plan.source}))){')' if flags else ''}"
    )


_PLACEHOLDERS = {"timestamp": "TIMESTAMP '1970-01-01'", "money": "1", "integer": "0"}


def _insert_rows(con: duckdb.DuckDBPyConnection, plan: _Plan, settings: LoadSettings, batch_id: int) -> int:
    """Stream every parsed row into the kind's table in one pass and return how many failed a
    per-row check. A failing row goes in under batch ``-batch_id`` with placeholder values (the
    table's constraints still hold) and is deleted straight away: counting the failures this way
    costs one cheap delete instead of parsing the file a second time."""
    kind = plan.kind
    values = [
        f"CASE WHEN problem IS NULL THEN {ident(c.name)} ELSE {_PLACEHOLDERS.get(c.type, chr(39) * 2)} END"
        for c in kind.columns
    ]
    extra, extra_values = ["batch_id"], ["CASE WHEN problem IS NULL THEN $batch_id ELSE -$batch_id END"]
    if kind.name == "transactions":
        extra += ["src_id", "dst_id"]
        extra_values += ["account_key(src_bank, src_account)", "account_key(dst_bank, dst_account)"]
    elif kind.name in ("accounts", "links"):
        extra.append("account_id")
        extra_values.append("account_key(bank, account)")
    select = _select_sql(plan, settings)
    params = plan.params | {"batch_id": batch_id}
    table = ident(kind.table)
    try:
        con.execute(
            f"INSERT INTO {table} ({', '.join([ident(c) for c in kind.names] + extra)}) "
            f"SELECT {', '.join(values + extra_values)} FROM ({select})",
            params,
        ).fetchall()
        failed = con.execute(f"DELETE FROM {table} WHERE batch_id = $b", {"b": -batch_id}).fetchall()[0][0]
        if kind.name == "transactions":
            _insert_extras(con, plan, select, batch_id)
    except duckdb.Error as exc:
        raise InputError(f"{plan.file.path}: {_first_line(exc)}") from None
    return failed


def _insert_extras(con: duckdb.DuckDBPyConnection, plan: _Plan, select: str, batch_id: int) -> None:
    """What a profile reads beside the payments, from the rows that passed every check, in one more pass over
    the source: its labels (``labels``) and the exchange rates its received amounts tell (``fx_pairs``)."""
    mapping = plan.mapping
    if not (mapping.labels or mapping.received):
        return
    cols = ["txn_id", "amount", "currency"] + [ident(f"label_{n}") for n in mapping.labels]
    cols += [ident(f"received_{n}") for n in mapping.received]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE ft_extras AS SELECT {', '.join(cols)} FROM ({select}) WHERE problem IS NULL",
        plan.params,
    ).fetchall()
    if mapping.labels:
        alert = "CAST(label_alert_id AS VARCHAR)" if "alert_id" in mapping.labels else "NULL"
        con.execute(
            "INSERT INTO labels (source, entity, txn_id, is_fraud, alert_id, batch_id) "
            f"SELECT $profile, 'transaction', txn_id, coalesce(label_is_fraud, false), {alert}, $batch_id "
            "FROM ft_extras",
            {"profile": plan.profile, "batch_id": batch_id},
        ).fetchall()
    if mapping.received:  # a received amount that is no positive finite number tells no rate
        con.execute(
            "INSERT INTO fx_pairs SELECT $batch_id, currency, received_currency, count(*), "
            "sum(ln(received_amount / CAST(amount AS DOUBLE))) FROM ft_extras "
            "WHERE received_currency IS NOT NULL AND received_currency <> currency "
            "AND received_amount > 0 AND isfinite(received_amount) GROUP BY currency, received_currency",
            {"batch_id": batch_id},
        ).fetchall()
    con.execute("DROP TABLE ft_extras").fetchall()


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


def _number_derived_ids(con: duckdb.DuckDBPyConnection, batch_id: int, labels: bool) -> None:
    """Identical rows without txn_id are distinct transfers: suffix the 2nd, 3rd ... occurrence
    (in file order, which is rowid order within the batch)."""
    tables = ["transactions"] + (["labels"] if labels else [])
    for table in tables:
        con.execute(
            f"""
            UPDATE {table} SET txn_id = {table}.txn_id || '-' || n.rn
            FROM (
                SELECT rowid AS rid, row_number() OVER (PARTITION BY txn_id ORDER BY rowid) AS rn
                FROM {table}
                WHERE batch_id = $b AND txn_id IN (
                    SELECT txn_id FROM {table} WHERE batch_id = $b AND txn_id LIKE '{DERIVED_PREFIX}%'
                    GROUP BY txn_id HAVING count(*) > 1)
            ) n
            WHERE {table}.rowid = n.rid AND n.rn > 1
            """,
            {"b": batch_id},
        ).fetchall()


def _key_match(kind: Kind, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{ident(k)} IS NOT DISTINCT FROM {right}.{ident(k)}" for k in kind.key)


def _create_key_rejects(con: duckdb.DuckDBPyConnection, kind: Kind) -> None:
    """ft_key_rejects: keys whose kept row was removed again, and which occurrence(s) in the file
    that concerns: 'first' (the row that was kept) or 'after_first' (in-batch duplicates)."""
    keys = ", ".join(f"{ident(k)}" for k in kind.key)
    con.execute(
        f"CREATE TEMP TABLE ft_key_rejects AS SELECT {keys}, '' AS reason, '' AS detail, '' AS occurrence "
        f"FROM {ident(kind.table)} WHERE false"
    )


def _key_hash_repeats(con: duckdb.DuckDBPyConnection, kind: Kind, batch_id: int) -> bool:
    """Whether the 64-bit hash of the key repeats among the batch's rows: a screen, since equal
    keys have equal hashes; a repeat is then checked by the real key.

    The hashes are fetched as one integer array (8 bytes a row) and sorted in NumPy: at 10 M rows
    about 0.45 s and 0.65 CPU seconds, against 0.9-1.3 s and 1.7-1.9 CPU seconds for grouping
    them in DuckDB (a hash table of 10 M groups)."""
    import numpy as np

    hashed = f"hash({', '.join(ident(k) for k in kind.key)})"
    h = con.execute(f"SELECT {hashed} AS h FROM {ident(kind.table)} WHERE batch_id = $b", {"b": batch_id}).fetchnumpy()[
        "h"
    ]
    h = np.asarray(h)
    h.sort()
    return bool(len(h) > 1 and (h[1:] == h[:-1]).any())


def _reject_batch_duplicates(con: duckdb.DuckDBPyConnection, kind: Kind, batch_id: int) -> None:
    """The second and later rows with one key in one batch are rejected; the first is kept."""
    keys = ", ".join(ident(k) for k in kind.key)
    table = ident(kind.table)
    shown = _shown_key(kind, "")
    con.execute(
        f"INSERT INTO ft_key_rejects SELECT {keys}, 'duplicate_in_batch', {shown} || ' appears earlier in the file', "
        f"'after_first' FROM {table} WHERE batch_id = $b GROUP BY {keys} HAVING count(*) > 1",
        {"b": batch_id},
    ).fetchall()
    con.execute(
        f"DELETE FROM {table} WHERE batch_id = $b AND rowid IN (SELECT rid FROM (SELECT rowid AS rid, "
        f"row_number() OVER (PARTITION BY {keys} ORDER BY rowid) AS rn FROM {table} WHERE batch_id = $b) WHERE rn > 1)",
        {"b": batch_id},
    ).fetchall()


def _shown_key(kind: Kind, alias: str) -> str:
    prefix = f"{alias}." if alias else ""
    return " || ', ' || ".join(f"'{k}=' || coalesce(CAST({prefix}{ident(k)} AS VARCHAR), '')" for k in kind.key)


def _resolve_existing(con: duckdb.DuckDBPyConnection, kind: Kind, batch_id: int) -> tuple[int, int]:
    """Keys already in the workspace: same content is skipped (the new row removed), other content
    is a conflict (rejected) or, for the account registry, an update (the old row removed).
    Returns (skipped, updated)."""
    table = ident(kind.table)
    same = " AND ".join(f"n.{ident(c)} IS NOT DISTINCT FROM o.{ident(c)}" for c in kind.names)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE ft_existing AS
        SELECT n.rowid AS new_rid, o.rowid AS old_rid, {same} AS same, {_shown_key(kind, "n")} AS shown,
               {", ".join(f"n.{ident(k)}" for k in kind.key)}
        FROM {table} n JOIN {table} o ON {_key_match(kind, "n", "o")}
        WHERE n.batch_id = $b AND o.batch_id <> $b
        """,
        {"b": batch_id},
    ).fetchall()
    counts = con.execute("SELECT count(*) FILTER (same), count(*) FILTER (NOT same) FROM ft_existing").fetchall()[0]
    if not counts[0] and not counts[1]:
        return 0, 0
    keys = ", ".join(ident(k) for k in kind.key)
    if kind.on_existing == "update":
        con.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT old_rid FROM ft_existing WHERE NOT same)").fetchall()
        con.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT new_rid FROM ft_existing WHERE same)").fetchall()
        return counts[0], counts[1]
    con.execute(
        f"INSERT INTO ft_key_rejects SELECT {keys}, 'conflict', shown || ' is already in the workspace with other "
        "values', 'first' FROM ft_existing WHERE NOT same"
    ).fetchall()
    con.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT new_rid FROM ft_existing)").fetchall()
    return counts[0], 0


def _known_account(column_bank: str, column_account: str) -> str:
    """SQL: is (bank, account) in the registry or in any transaction?"""
    key = f"account_key({column_bank}, {column_account})"
    return (
        f"({key} IN (SELECT account_id FROM accounts) OR {key} IN (SELECT src_id FROM transactions) "
        f"OR {key} IN (SELECT dst_id FROM transactions))"
    )


def _reject_unknown_references(con: duckdb.DuckDBPyConnection, kind: Kind, batch_id: int) -> None:
    """Links must name an account the workspace knows; reports a known payment or account."""
    conditions = []
    if kind.name == "links":
        conditions.append(("unknown_account", "bank || ':' || account", f"NOT {_known_account('bank', 'account')}"))
    elif kind.name == "reports":
        conditions.append(
            ("unknown_txn", "'txn_id=' || txn_id",
             "txn_id IS NOT NULL AND txn_id NOT IN (SELECT txn_id FROM transactions)")
        )  # fmt: skip
        conditions.append(
            ("unknown_account", "first_bank || ':' || first_account",
             f"txn_id IS NULL AND NOT {_known_account('first_bank', 'first_account')}")
        )  # fmt: skip
    keys = ", ".join(ident(k) for k in kind.key)
    table = ident(kind.table)
    for reason, detail, condition in conditions:
        where = f"batch_id = $b AND {condition}"
        con.execute(
            f"INSERT INTO ft_key_rejects SELECT {keys}, '{reason}', {detail}, 'first' FROM {table} WHERE {where}",
            {"b": batch_id},
        ).fetchall()
        con.execute(f"DELETE FROM {table} WHERE {where}", {"b": batch_id}).fetchall()


def _locate_rejects(
    con: duckdb.DuckDBPyConnection, plan: _Plan, settings: LoadSettings, structural: list[dict]
) -> list[dict]:
    """Find the file lines of rows that failed a per-row check or were removed by a batch check.

    Reads the file once more with each row's position (``row_number() OVER ()`` follows file
    order), keeping only rows with a problem or a rejected key; runs only when something failed."""
    kind = plan.kind
    keys = [ident(k) for k in kind.key]
    match = " AND ".join(f"k.{k} IS NOT DISTINCT FROM s.{k}" for k in keys)
    rows = con.execute(
        f"""
        SELECT s.ft__pos, s.ord, s.problem, s.raw_row, k.reason, k.detail, k.occurrence,
               row_number() OVER (PARTITION BY {", ".join(f"s.{k}" for k in keys)}, k.reason
                                  ORDER BY s.ft__pos) AS occurrence_no
        FROM (SELECT row_number() OVER () - 1 AS ft__pos, * FROM ({_select_sql(plan, settings, raw_for_all=True)})) s
        LEFT JOIN ft_key_rejects k ON s.problem IS NULL AND {match}
        WHERE s.problem IS NOT NULL OR k.reason IS NOT NULL
        ORDER BY s.ft__pos
        """,
        plan.params,
    ).fetchall()
    skipped_lines = [r["line"] for r in structural]
    out = []
    for pos, ord_, problem, raw, key_reason, key_detail, occurrence, occurrence_no in rows:
        if problem is not None:
            reason, _, detail = problem.partition("\x1f")
        elif (occurrence == "first") == (occurrence_no == 1):
            reason, detail = key_reason, key_detail
        else:
            continue
        line = int(ord_) + 1 if ord_ is not None else _csv_line(int(pos), skipped_lines)
        out.append({"file": str(plan.file.path), "line": line, "reason": reason, "detail": detail, "raw": raw})
    return out


def _csv_line(ordinal: int, rejected_lines: list[int]) -> int:
    """Record number (header = 1) of the ``ordinal``-th row DuckDB parsed (from 0), given the
    records it rejected, which leave gaps in the sequence of parsed rows."""
    line = ordinal + 2
    for r in rejected_lines:
        if r > line:
            break
        line += 1
    return line


def _record_batch(con: duckdb.DuckDBPyConnection, plan: _Plan, batch_id: int, result: BatchResult, rejects) -> None:
    con.execute(
        "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            batch_id, plan.kind.name, plan.profile, str(plan.file.path), plan.file.sha256,
            datetime.now(UTC).replace(tzinfo=None), result.rows_in, result.rows_kept, result.rows_rejected,
            result.rows_duplicate, result.rows_updated,
        ],
    ).fetchall()  # fmt: skip
    if rejects:
        con.executemany(
            "INSERT INTO rejects VALUES (?, ?, ?, ?, ?, ?)",
            [[batch_id, r["file"], r["line"], r["reason"], r["detail"], r["raw"]] for r in rejects],
        )
