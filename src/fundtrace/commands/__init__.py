"""Command modules; importing one registers its commands on ``fundtrace.cli.app``."""

import fundtrace.commands.demo  # noqa: F401
import fundtrace.commands.evaluate  # noqa: F401
from fundtrace.commands import load  # noqa: F401
from fundtrace.commands import trace  # noqa: F401
from fundtrace.commands import simulate  # noqa: F401
