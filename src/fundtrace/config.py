"""Typed settings with precedence: defaults < ``fundtrace.toml`` < command-line flags.

Each stage owns its settings as a frozen dataclass and asks for it by section name::

    @dataclass(frozen=True)
    class LoadSettings:
        currency: str = "CNY"

    settings = config.section("load", LoadSettings, overrides={"currency": "USD"})

A bad value is reported as ``• load.currency: expected text``, one line per field, all at once.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fundtrace.errors import ConfigError

T = TypeVar("T")
DEFAULT_FILE = "fundtrace.toml"


@dataclass(frozen=True)
class LoadSettings:
    """How batches are read and validated."""

    currency: str = "CNY"
    default_bank: str = "default"
    max_reject_rate: float = 0.05
    # ISO 4217 codes plus the crypto codes that cash-out channels carry; extend in fundtrace.toml.
    extra_currencies: tuple[str, ...] = ()
    # DuckDB's memory budget while loading; past it, DuckDB spills to disk. Keeps a 10 M-row load
    # under 1 GiB of resident memory.
    memory_limit: str = "640MB"


@dataclass
class Config:
    """The parsed ``fundtrace.toml`` (possibly empty) and where it came from."""

    data: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    resolved: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Config:
        """Read ``path``, else ``$FUNDTRACE_CONFIG``, else ``./fundtrace.toml`` when it exists."""
        explicit = path or os.environ.get("FUNDTRACE_CONFIG")
        candidate = Path(explicit) if explicit else Path(DEFAULT_FILE)
        if not candidate.exists():
            if explicit:
                raise ConfigError([("config", f"file not found: {candidate}")])
            return cls()
        try:
            data = tomllib.loads(candidate.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([(str(candidate), str(exc))]) from exc
        return cls(data=data, path=candidate)

    def section(self, name: str, cls: type[T], overrides: dict[str, Any] | None = None) -> T:
        """Build settings ``cls`` from section ``name`` and non-None ``overrides`` (CLI flags)."""
        section = self.data.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError([(name, f"expected a table ([{name}] with its settings under it), got {section!r}")])
        raw = dict(section)
        raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
        problems: list[tuple[str, str]] = []
        known = {f.name: f for f in dataclasses.fields(cls)}
        for key in raw:
            if key not in known:
                problems.append((f"{name}.{key}", f"unknown setting (known: {', '.join(sorted(known))})"))
        hints = typing.get_type_hints(cls)
        values = {}
        for key, value in raw.items():
            if key in known:
                try:
                    values[key] = _coerce(value, hints[key])
                except (TypeError, ValueError) as exc:
                    problems.append((f"{name}.{key}", str(exc)))
        if problems:
            raise ConfigError(problems)
        settings = cls(**values)
        check = getattr(settings, "validate", None)
        if check:
            problems = [(f"{name}.{f}", m) for f, m in check()]
            if problems:
                raise ConfigError(problems)
        self.resolved[name] = dataclasses.asdict(settings)
        return settings


def _coerce(value: Any, hint: Any) -> Any:
    """Convert a TOML or CLI value to ``hint``; raise ValueError with a message for people."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _coerce(value, args[0])
    if origin is tuple:
        (item,) = typing.get_args(hint)[:1]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError("expected a list")
        return tuple(_coerce(v, item) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
            return value.lower() in {"true", "1", "yes"}
        raise ValueError("expected true or false")
    if hint in (int, float):
        kind = "a whole number" if hint is int else "a number"
        if isinstance(value, bool):
            raise ValueError(f"expected {kind}")
        if hint is int and isinstance(value, int):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected {kind}, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number, got {value!r}")
        if hint is float:
            return number
        if not number.is_integer():  # 2.5 is no whole number (int() would cut it to 2); 3.0 and "3" are 3
            raise ValueError(f"expected a whole number, got {value!r}")
        try:
            return int(value)  # exact for whole-number text of any length
        except ValueError:
            return int(number)  # "3.0", "1e3"
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {value!r}")
        return value
    return value
