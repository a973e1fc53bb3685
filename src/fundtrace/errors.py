"""One exception tree. Library code raises these; only the CLI maps them to exit codes."""

from __future__ import annotations


class FundtraceError(Exception):
    """Base of every expected error. ``str(err)`` is one line a person can act on."""

    exit_code = 1
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def one_line(self) -> str:
        msg = str(self)
        return f"{msg} ({self.hint})" if self.hint else msg


class InputError(FundtraceError):
    """A file or value given by the user cannot be used: bad format, missing column, bad encoding."""

    exit_code = 2


class UsageError(InputError):
    """The command line itself is wrong: an unknown name, a bad combination of options."""


class ConfigError(FundtraceError):
    """``fundtrace.toml`` or a setting override is invalid; ``problems`` lists ``field: message``."""

    exit_code = 2

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in problems))

    def one_line(self) -> str:
        return "invalid configuration:\n" + "\n".join(f"  • {f}: {m}" for f, m in self.problems)


class SchemaError(FundtraceError):
    """The workspace file is not one fundtrace can use (too new, damaged, not a DuckDB file)."""


class WorkspaceBusy(FundtraceError):
    """Another process holds the workspace file."""

    exit_code = 75


class RejectRateExceeded(InputError):
    """More rows were rejected than ``--max-reject-rate`` allows; nothing was written."""

    def __init__(self, message: str, rejects: list[dict]):
        super().__init__(message)
        self.rejects = rejects


class QueryError(FundtraceError):
    """A named SQL step failed; carries the step name and its SQL for ``--debug-sql``."""

    def __init__(self, name: str, sql: str, cause: Exception | str):
        self.name = name
        self.sql = sql
        first = str(cause).splitlines()[0]
        super().__init__(f"step {name!r} failed: {first}")
        if "Conversion Error" in first and "DECIMAL(18,4)" in first:  # money is DECIMAL(18, 4) throughout
            self.hint = (
                "a total of amounts passed 99,999,999,999,999.9999, the largest sum of money fundtrace keeps "
                "(a load keeps each payment below it): check the files' amounts and their unit"
            )


class TooManyWalks(FundtraceError):
    """A path search outgrew its limit (the payments form a dense mesh); the run stored nothing."""
