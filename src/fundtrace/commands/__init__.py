"""Command modules; importing one registers its commands on ``fundtrace.cli.app``.

Only the module of the command being run is imported (a command module pulls in its library, and
importing all of them costs about a second of start-up); ``--help`` and unknown names import all.
``COMMANDS`` maps each command to its module, in the order `fundtrace --help` lists them: the
analyst's path from data to decisions. A test checks it against what the modules register.
"""

from importlib import import_module

COMMANDS = {
    "demo": "demo",
    "load": "load",
    "status": "load",
    "simulate": "simulate",
    "detect": "detect",
    "trace": "trace",
    "score": "score",
    "screen": "score",
    "freeze": "score",
    "stats": "score",
    "returns": "score",
    "evaluate": "evaluate",
    "query": "query",
    "sql": "sql",
    "show": "show",
    "explain": "show",
    "case": "case",
    "report": "report",
    "run": "run",
}
# Global options that take a value, to find the command name after them.
_VALUED_OPTIONS = ("--db", "--config")


def register(argv: list[str] | None = None) -> None:
    """Import the module of the command named in ``argv``, or every module when none is named."""
    argv = argv or []
    name = command_name(argv)
    if name is None and "--version" in argv and "--help" not in argv:
        return  # nothing to list
    wanted = [COMMANDS[name]] if name in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for module in wanted:
        import_module(f"fundtrace.commands.{module}")


def command_name(argv: list[str]) -> str | None:
    """The first word of ``argv`` that is neither a global option nor an option's value."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in _VALUED_OPTIONS:
            skip = True
        elif not word.startswith("-"):
            return word
    return None
