"""The command line: parse, call one library function, render, exit.

Commands live in ``fundtrace.commands.*`` and register on :data:`app`; this module holds the global
options, the mapping of errors to exit codes, and the few rendering helpers every command shares.
Data goes to stdout; messages, progress and errors go to stderr.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

try:  # recent typer vendors click; older typer uses click itself
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException
from rich.console import Console
from rich.table import Table

from fundtrace import __version__
from fundtrace.config import Config
from fundtrace.errors import FundtraceError, RejectRateExceeded
from fundtrace.schema import TRACE_RULES
from fundtrace.workspace import Workspace

EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_BUSY = 0, 1, 2, 75


class Format(StrEnum):
    """How a command prints its result: a table for people, or JSON for programs."""

    table = "table"
    json = "json"


# The tracing rules, as a choice for --rule options.
Rule = StrEnum("Rule", {name: name for name in TRACE_RULES})

app = typer.Typer(
    name="fundtrace",
    help="Trace victims' money through mule accounts, detect layering and card-farm rings, "
    "and produce freeze lists for banks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)
stdout = Console(soft_wrap=True)
if not stdout.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
    stdout = Console(soft_wrap=True, width=200)
stderr = Console(stderr=True, soft_wrap=True)


@dataclass
class State:
    """Global options, set by the callback before any command runs."""

    db: Path | None = None
    config_path: Path | None = None
    debug: bool = False
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = Config.load(self.config_path)
        return self._config

    def workspace(self, read_only: bool = False) -> Workspace:
        return Workspace(self.db, read_only=read_only)


state = State()


def _version(value: bool) -> None:
    if value:
        stdout.print(f"fundtrace {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="The workspace file to use. Defaults to $FUNDTRACE_DB, else ./fundtrace.duckdb.",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="The settings file to read. Defaults to $FUNDTRACE_CONFIG, else ./fundtrace.toml when present.",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback when a command fails.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the fundtrace version and exit."),
    ] = False,
) -> None:
    """Trace victims' money through mule accounts and decide what to hold and freeze."""
    state.db, state.config_path, state.debug = db, config, debug


def emit(rows: Sequence[dict[str, Any]], fmt: str = "table", title: str | None = None) -> None:
    """Write ``rows`` to stdout as a table, JSON lines or CSV."""
    if fmt == "json":
        stdout.file.write(json.dumps(list(rows), default=_json_default, ensure_ascii=False, indent=2) + "\n")
        return
    if fmt == "csv":
        import csv

        if rows:
            writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return
    table = Table(title=title, title_justify="left", show_lines=False)
    columns = list(rows[0]) if rows else []
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*[_cell(row[c]) for c in columns])
    stdout.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(value: float | None) -> str:
    """A ratio for people: four decimals, or ``-`` when it is undefined (nothing to divide by)."""
    return "-" if value is None else f"{value:.4f}"


def money(value: float | None) -> str:
    """An amount for people: thousands separators and cents, or ``-`` when there is none."""
    return "-" if value is None else f"{value:,.2f}"


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def say(message: str) -> None:
    """A message for the person at the terminal, on stderr."""
    stderr.print(message, highlight=False)


@contextmanager
def progress_steps(description: str) -> Iterator[Any]:
    """A spinner with a changing step label on stderr; silent when stderr is not a terminal."""
    if not stderr.is_terminal:
        yield lambda step: None
        return
    with stderr.status(description) as status:
        yield lambda step: status.update(f"{description}: {step}")


def main(argv: list[str] | None = None) -> int:
    """Run one command; expected errors become one line on stderr and an exit code, never a traceback."""
    from fundtrace.commands import register

    register(sys.argv[1:] if argv is None else argv)

    state.__init__()  # fresh global options for every run (tests call main() many times)
    try:
        app(args=argv, prog_name="fundtrace", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except ClickException as exc:  # usage errors: unknown option, missing argument ...
        exc.show(file=sys.stderr)
        return EXIT_INPUT
    except typer.Abort:
        stderr.print("aborted", style="red")
        return 130
    except FundtraceError as exc:
        if state.debug:
            traceback.print_exc()
        if isinstance(exc, RejectRateExceeded):
            for r in exc.rejects:
                stderr.print(f"  line {r['line']}: {r['reason']} {r['detail'] or ''}", highlight=False, markup=False)
        stderr.print(f"error: {exc.one_line()}", style="bold red", highlight=False, markup=False)
        return exc.exit_code
    except KeyboardInterrupt:
        stderr.print("interrupted", style="red")
        return 130
    except Exception as exc:  # unexpected: say so in one line, keep the traceback one flag away
        if state.debug:
            traceback.print_exc()
        stderr.print(
            f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            style="bold red",
            highlight=False,
            markup=False,
        )
        return EXIT_ERROR
    return EXIT_OK


def entry() -> None:
    """The ``fundtrace`` console script."""
    sys.exit(main())
