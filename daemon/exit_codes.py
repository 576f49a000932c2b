"""The ``neural-style`` command's exit codes, the one table for every subcommand: the in-process and daemon
paths of ``stylize`` and ``serve`` itself (README lists them)."""

EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug (the message says to run with -v); serve: it could not listen, or its loop failed
EXIT_BAD_INPUT = 2  # a missing or unreadable file, a bad option or parameter (serve: a bad option, an unsafe bind)
EXIT_NO_WEIGHTS = 3  # no VGG19 weights (locally, or the daemon answered no_weights)
EXIT_NO_DAEMON = 4  # no daemon answered and none could be started
EXIT_DAEMON_ERROR = 5  # the daemon refused or failed the job
EXIT_INTERRUPTED = 130  # Ctrl+C, or the job was cancelled
