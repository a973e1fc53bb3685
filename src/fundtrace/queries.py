"""SQL files under ``queries/``, loaded by name.

A query file starts with a header of ``--`` comment lines::

    -- name: pass_through
    -- description: Accounts whose money leaves soon after it arrives, in about the same amount.
    -- inputs: transactions
    -- outputs: account_id, in_amount, out_amount, ...
    -- param: dwell_hours DOUBLE = 24  How long money may stay before it counts as passed through.
    -- param: account VARCHAR          A required parameter has no default.

followed by the SQL. A multi-step query separates its steps with ``-- step: NAME`` lines; each step
is materialised as a temporary table called NAME that later steps read, and the last step is the
result. Parameters are bound by DuckDB as ``$name``, never pasted into the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from fundtrace.errors import UsageError

_HEADER = re.compile(r"^--\s*(name|description|inputs|outputs|param|kind):\s*(.*)$")
_PARAM = re.compile(r"^(\w+)\s+(\w+)(?:\s*=\s*(\S+))?\s*(.*)$")
_STEP = re.compile(r"^--\s*step:\s*(\w+)\s*$", re.MULTILINE)
TYPES = {"VARCHAR", "INTEGER", "BIGINT", "DOUBLE", "DECIMAL", "TIMESTAMP", "DATE", "BOOLEAN"}


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: str | None
    description: str

    def convert(self, text: Any) -> Any:
        """Convert a value given as text (``-p key=value``) to this parameter's Python type."""
        if not isinstance(text, str):
            return text
        try:
            if self.type in ("INTEGER", "BIGINT"):
                return int(text)
            if self.type in ("DOUBLE", "DECIMAL"):
                value = float(text)
                if value != value or value in (float("inf"), float("-inf")):
                    raise ValueError
                return value
            if self.type == "BOOLEAN":
                if text.lower() not in {"true", "false", "1", "0"}:
                    raise ValueError
                return text.lower() in {"true", "1"}
            if self.type == "TIMESTAMP":
                return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)
            if self.type == "DATE":
                return date.fromisoformat(text)
        except ValueError:
            raise UsageError(f"parameter {self.name} must be {self.type}, got {text!r}") from None
        return text


@dataclass(frozen=True)
class Query:
    name: str
    description: str
    sql: str
    path: Path
    kind: str = "analyst"  # analyst | detect | export
    inputs: str = ""
    outputs: str = ""
    params: tuple[Param, ...] = field(default_factory=tuple)

    @property
    def steps(self) -> list[tuple[str, str]]:
        """(name, sql) pairs; a file without ``-- step:`` lines is one step named after the query."""
        parts = _STEP.split(self.sql)
        if len(parts) == 1:
            return [(self.name, self.sql.strip().rstrip(";"))]
        return [(parts[i], parts[i + 1].strip().rstrip(";")) for i in range(1, len(parts), 2)]

    def bind(self, given: dict[str, Any]) -> dict[str, Any]:
        """Check names and types of ``given`` and fill defaults; returns the values to bind."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise UsageError(
                f"query {self.name} has no parameter {', '.join(unknown)} (it takes: {', '.join(known) or 'none'})"
            )
        values = {}
        for p in self.params:
            if p.name in given and given[p.name] is not None:
                values[p.name] = p.convert(given[p.name])
            elif p.default is not None:
                values[p.name] = None if p.default.upper() == "NULL" else p.convert(p.default)
            else:
                raise UsageError(f"query {self.name} needs parameter {p.name} ({p.type}): {p.description}")
        # Bind only what the SQL mentions: DuckDB refuses unused named parameters.
        return {k: v for k, v in values.items() if re.search(rf"\${k}\b", self.sql)}


def queries_dir() -> Path:
    """``queries/`` inside the installed package, or at the root of a source checkout."""
    packaged = resources.files("fundtrace") / "queries"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "queries"


def parse(path: Path) -> Query:
    text = path.read_text(encoding="utf-8")
    meta: dict[str, str] = {}
    params = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        m = _HEADER.match(line.strip())
        if not m:
            continue
        key, value = m[1], m[2].strip()
        if key == "param":
            pm = _PARAM.match(value)
            if not pm or pm[2].upper() not in TYPES:
                raise ValueError(f"{path}: bad param line {line!r}")
            params.append(Param(pm[1], pm[2].upper(), pm[3], pm[4].strip()))
        else:
            meta[key] = value
    if "name" not in meta:
        raise ValueError(f"{path}: query file has no '-- name:' header")
    return Query(
        name=meta["name"],
        description=meta.get("description", ""),
        sql=text,
        path=path,
        kind=meta.get("kind", "analyst"),
        inputs=meta.get("inputs", ""),
        outputs=meta.get("outputs", ""),
        params=tuple(params),
    )


@cache
def all_queries() -> dict[str, Query]:
    found = {}
    for path in sorted(queries_dir().rglob("*.sql")):
        q = parse(path)
        if q.name in found:
            raise ValueError(f"two query files are named {q.name}: {found[q.name].path} and {path}")
        found[q.name] = q
    return found


def get(name: str) -> Query:
    queries = all_queries()
    if name not in queries:
        raise UsageError(f"no query named {name!r} (see `fundtrace query --list`)")
    return queries[name]
