"""Exit statuses of the ``parallux`` command (SPEC §1)."""

EXIT_OK = 0          # the config finished and no check=True command failed
EXIT_FAILED = 1      # a check=True command failed, or the config raised
EXIT_USAGE = 2       # usage or config error before any command ran
EXIT_SIGINT = 130    # interrupted by Ctrl-C
EXIT_SIGHUP = 129    # hung up: the terminal closed, or the session that started parallux ended
EXIT_SIGTERM = 143   # terminated by SIGTERM
