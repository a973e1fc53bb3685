"""Every command and every option explains itself in full sentences (STYLE: tests through the real thing)."""

from __future__ import annotations

import typer

from fundtrace.cli import app
from fundtrace.commands import COMMANDS, command_name, register

register()  # every command module


def _walk(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


def test_every_command_and_option_has_full_sentence_help():
    root = typer.main.get_command(app)
    missing = []
    for path, command in _walk(root):
        name = " ".join(path) or "fundtrace"
        if not (command.help or "").strip():
            missing.append(f"{name}: no help")
        for param in command.params:
            if param.param_type_name != "option" or param.hidden:
                continue
            text = (getattr(param, "help", None) or "").strip()
            if not text:
                missing.append(f"{name} {param.opts[0]}: no help")
            elif not text.rstrip(")").endswith((".", "?")):
                missing.append(f"{name} {param.opts[0]}: help is not a sentence: {text!r}")
    assert not missing, "\n".join(missing)


def test_help_runs_for_every_command(cli):
    root = typer.main.get_command(app)
    for name in root.commands:
        r = cli(f"{name} --help")
        assert r.code == 0, (name, r.err)
        assert "Usage" in r.out


def test_command_map_matches_what_modules_register():
    """COMMANDS (which module to import for a command) must name every command exactly once."""
    root = typer.main.get_command(app)
    assert set(root.commands) == set(COMMANDS)


def test_command_name_skips_global_options():
    assert command_name(["--db", "x.duckdb", "--debug", "load", "transactions", "f.csv"]) == "load"
    assert command_name(["--config=x.toml", "status"]) == "status"
    assert command_name(["--version"]) is None
