"""Command modules; importing one registers its commands on ``fundtrace.cli.app``.

Listed in the order `fundtrace --help` shows them: the analyst's path from data to decisions.
"""

from importlib import import_module

COMMAND_MODULES = (
    "demo",
    "load",
    "simulate",
    "detect",
    "trace",
    "score",
    "evaluate",
    "query",
    "sql",
    "show",
    "case",
    "report",
    "run",
)

for _name in COMMAND_MODULES:
    import_module(f"fundtrace.commands.{_name}")
