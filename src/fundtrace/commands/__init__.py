"""Command modules; importing one registers its commands on ``fundtrace.cli.app``."""

import fundtrace.commands.load  # noqa: F401  (load, status)
import fundtrace.commands.simulate  # noqa: F401
import fundtrace.commands.detect  # noqa: F401
import fundtrace.commands.trace  # noqa: F401
import fundtrace.commands.evaluate  # noqa: F401
import fundtrace.commands.demo  # noqa: F401
