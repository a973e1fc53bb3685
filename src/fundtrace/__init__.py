"""fundtrace: trace victims' money through mule accounts and decide what to hold and freeze."""

__version__ = "0.1.0"
