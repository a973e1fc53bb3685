from fundtrace.cli import main

main()
