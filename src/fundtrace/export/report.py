"""Parquet reports with a manifest: the results handed on to other tools, written by the engine.

:func:`write_report` writes into one directory

- ``alerts.parquet``, ``alert_members.parquet``, ``alert_evidence.parquet``, ``account_scores.parquet``,
  ``payment_decisions.parquet``, ``trace_flows.parquet``, ``trace_holdings.parquet``: the workspace tables
  as they are, sorted, each written by DuckDB (``COPY … TO … (FORMAT parquet, COMPRESSION zstd,
  KV_METADATA {…})``) with the run id, the fundtrace version, the table name and the generation time in
  the file's key-value metadata;
- ``freeze_list.csv``: the requests for banks, by the freeze writer (:mod:`fundtrace.export.freeze`);
- ``manifest.json``, written last: fundtrace version, run id, generation time, the resolved settings (and
  the last detect run's, as fitted to the data),
  every input batch with its sha256, the workspace's row counts and, per file, its rows, bytes and sha256.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fundtrace import __version__
from fundtrace.errors import InputError

__all__ = ["MANIFEST", "TABLES", "new_run_id", "write_report"]

MANIFEST = "manifest.json"
FREEZE_FILE = "freeze_list.csv"
# table -> the order its rows are written in (same workspace, same file content)
TABLES: dict[str, str] = {
    "alerts": "alert_id",
    "alert_members": "alert_id, bank, account",
    "alert_evidence": "alert_id, txn_id",
    "account_scores": "bank, account",
    "payment_decisions": "screened_at, txn_id",
    "trace_flows": "case_id, ts, hop, txn_id",
    "trace_holdings": "case_id, hop, bank, account",
}
_COUNTED = (
    "transactions", "accounts", "links", "reports", "calls", "rejects", "alerts", "alert_members", "alert_evidence",
    "trace_flows", "trace_holdings", "account_scores", "freeze_list", "freeze_requests", "payment_decisions",
)  # fmt: skip


def new_run_id(at: datetime | None = None) -> str:
    """A run id: the UTC time to the second and 8 random hex digits, e.g. ``20240301T101500Z-1a2b3c4d``."""
    at = at or datetime.now(UTC)
    return f"{at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_report(
    ws,
    out: Path,
    *,
    config: dict[str, Any] | None = None,
    score_settings=None,
    freeze_rows: list[dict[str, Any]] | None = None,
    now: datetime | str | None = None,
    run_id: str | None = None,
    progress=None,
) -> dict[str, Any]:
    """Write the report files into ``out`` and return the manifest.

    ``freeze_rows``: the requests a freeze stage just issued (written as they are); when None, the
    requests that would be issued at ``now`` are previewed (not recorded) with
    :func:`fundtrace.export.freeze.issue`. ``config``: the resolved settings to record.
    """
    from fundtrace.export.freeze import issue, write_csv

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    step = progress or (lambda _msg: None)
    generated = datetime.now(UTC).replace(microsecond=0)
    run_id = run_id or new_run_id(generated)
    con = ws.con
    meta = {
        "run_id": run_id,
        "fundtrace_version": __version__,
        "generated_at": generated.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    files: dict[str, dict[str, Any]] = {}
    (out / MANIFEST).unlink(missing_ok=True)  # a directory without a manifest is an unfinished report
    for table, order in TABLES.items():
        step(f"writing {table}.parquet")
        path = out / f"{table}.parquet"
        kv = ", ".join(f"{k}: {_literal(v)}" for k, v in (meta | {"table_name": table}).items())
        rows = con.execute(
            f"COPY (SELECT * FROM {table} ORDER BY {order}) TO {_literal(str(path))} "
            f"(FORMAT parquet, COMPRESSION zstd, KV_METADATA {{{kv}}})"
        ).fetchall()
        files[path.name] = {"rows": int(rows[0][0]) if rows else 0}

    step("writing freeze_list.csv")
    freeze_path = out / FREEZE_FILE
    freeze: dict[str, Any]
    if freeze_rows is not None:
        write_csv(freeze_rows, freeze_path)
        freeze = {"requests": len(freeze_rows), "recorded": True}
    elif con.execute("SELECT count(*) FROM account_scores").fetchall()[0][0]:
        result = issue(ws, now=now, settings=score_settings, out=freeze_path, record=False)
        freeze = {"requests": len(result.rows), "recorded": False, "now": result.now.isoformat(sep=" ")}
    else:
        write_csv([], freeze_path)
        freeze = {"requests": 0, "recorded": False, "note": "no scores yet: run `fundtrace score`"}
    files[FREEZE_FILE] = {"rows": freeze["requests"]}
    for name, info in files.items():
        path = out / name
        info["bytes"] = path.stat().st_size
        info["sha256"] = _sha256(path)

    names = ["batch_id", "kind", "profile", "path", "sha256", "loaded_at", "rows_in", "rows_kept", "rows_rejected",
             "rows_duplicate", "rows_updated"]  # fmt: skip
    batches = [
        dict(zip(names, row, strict=True))
        for row in con.execute(f"SELECT {', '.join(names)} FROM batches ORDER BY batch_id").fetchall()
    ]
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in _COUNTED if ws.table_exists(t)}
    span = con.execute("SELECT min(ts), max(ts) FROM transactions").fetchall()[0]
    # the settings detection ran with, as fitted to the data (detect/fit.py: scale, kinds), not as configured
    last = con.execute(
        "SELECT run_id, started_at, mode, typologies, settings FROM detect_runs ORDER BY run_id DESC LIMIT 1"
    ).fetchall()
    detection = (
        {"run_id": last[0][0], "started_at": _plain(last[0][1]), "mode": last[0][2],
         "typologies": last[0][3].split(","), "settings": json.loads(last[0][4])}
        if last else None
    )  # fmt: skip
    manifest = {
        **meta,
        "workspace": {"path": str(ws.path), "schema_version": ws.schema_version},
        "config": _plain(config or {}),
        "detection": detection,
        "inputs": _plain(batches),
        "data_span": {"from": _plain(span[0]), "to": _plain(span[1])},
        "row_counts": counts,
        "freeze": freeze,
        "files": files,
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n"
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out / MANIFEST)
    return manifest
