"""The workspace: one DuckDB file holding inputs, provenance and results.

Opening it applies forward migrations (``migrations/NNNN_name.sql``) in order, each in its own
transaction together with its row in ``schema_version``, so a crash never leaves half a migration.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import duckdb

from fundtrace.errors import SchemaError, WorkspaceBusy

DEFAULT_PATH = "fundtrace.duckdb"
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# DuckDB's hash() is not promised stable across releases; account_key() depends on it, so the
# workspace remembers what it gave for a probe string and refuses to mix two hash functions.
_HASH_PROBE = "fundtrace-probe"


def resolve_path(path: str | os.PathLike | None) -> Path:
    """``--db PATH``, else ``$FUNDTRACE_DB``, else ``./fundtrace.duckdb``."""
    return Path(path or os.environ.get("FUNDTRACE_DB") or DEFAULT_PATH)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("fundtrace.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found)


def connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open ``path``; another process holding it raises WorkspaceBusy naming its PID."""
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" in text.lower():
            pid = re.search(r"PID (\d+)", text)
            holder = f" (held by PID {pid[1]})" if pid else ""
            raise WorkspaceBusy(
                f"workspace busy{holder}: {path}", hint="wait for the other fundtrace command to finish"
            ) from None
        raise SchemaError(f"cannot open workspace {path}: {text.splitlines()[0]}") from None
    except duckdb.Error as exc:
        raise SchemaError(f"cannot open workspace {path}: {str(exc).splitlines()[0]}") from None
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    return con


class Workspace:
    """An open workspace. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike | None = None, *, read_only: bool = False):
        self.path = resolve_path(path)
        if read_only and not self.path.exists():
            raise SchemaError(f"no workspace at {self.path}", hint="load data first with `fundtrace load`")
        self.read_only = read_only
        self.con = connect(self.path, read_only=read_only)
        if read_only:
            self._check_version()
        else:
            self._migrate()
        self._check_hash()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    @property
    def schema_version(self) -> int:
        if not self.table_exists("schema_version"):
            return 0
        return self.con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]

    def table_exists(self, name: str) -> bool:
        row = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?",
            [name],
        ).fetchall()[0]
        return row[0] > 0

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All statements inside land together or not at all."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def _check_version(self) -> None:
        known = migrations()[-1][0]
        if self.schema_version > known:
            raise SchemaError(
                f"workspace {self.path} has schema version {self.schema_version}, "
                f"newer than this fundtrace knows ({known})",
                hint="upgrade fundtrace",
            )

    def _migrate(self) -> None:
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        self._check_version()
        current = self.schema_version
        for version, name, sql in migrations():
            if version <= current:
                continue
            with self.transaction() as con:
                con.execute(sql)
                con.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    [version, name, datetime.now(UTC).replace(tzinfo=None)],
                )
                if version == 1:
                    con.execute(
                        "INSERT INTO meta VALUES ('hash_probe', CAST(account_key(?, ?) AS VARCHAR))",
                        [_HASH_PROBE, _HASH_PROBE],
                    )

    def _check_hash(self) -> None:
        rows = self.con.execute("SELECT value FROM meta WHERE key = 'hash_probe'").fetchall()
        now = self.con.execute("SELECT CAST(hash(?, ?) AS VARCHAR)", [_HASH_PROBE, _HASH_PROBE]).fetchall()[0][0]
        if rows and rows[0][0] != now:
            raise SchemaError(
                f"workspace {self.path} was built by a DuckDB whose hash() differs from this one's",
                hint="reload the batches into a new workspace, or install the DuckDB version that built it",
            )


def summary(ws: Workspace) -> dict:
    """Rows per table, the batches, the transactions' time span and the schema version."""
    con = ws.con
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_type = 'BASE TABLE' AND table_name NOT IN ('schema_version', 'meta') ORDER BY table_name"
        ).fetchall()
    ]
    counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in tables}
    span = con.execute("SELECT min(ts), max(ts) FROM transactions").fetchall()[0]
    batches = con.sql(
        "SELECT batch_id, kind, profile, path, rows_in, rows_kept, rows_rejected, rows_duplicate, rows_updated, "
        "sha256, loaded_at FROM batches ORDER BY batch_id"
    ).fetchall()
    names = ["batch_id", "kind", "profile", "path", "rows_in", "rows_kept", "rows_rejected", "rows_duplicate",
             "rows_updated", "sha256", "loaded_at"]  # fmt: skip
    return {
        "path": str(ws.path),
        "schema_version": ws.schema_version,
        "tables": counts,
        "transactions_from": span[0].isoformat(sep=" ") if span[0] else None,
        "transactions_to": span[1].isoformat(sep=" ") if span[1] else None,
        "batches": [dict(zip(names, row, strict=True)) | {"loaded_at": row[-1].isoformat(sep=" ")} for row in batches],
    }
