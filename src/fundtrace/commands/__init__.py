"""Command modules; importing one registers its commands on ``fundtrace.cli.app``."""

from fundtrace.commands import load  # noqa: F401
