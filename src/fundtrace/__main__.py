from fundtrace.cli import entry

entry()
