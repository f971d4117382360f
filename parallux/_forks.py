"""A config that forks: parallux's part in the child.

``os.fork()`` copies the config's process with one thread, the one that forked: the engine thread that runs
every command is not in the child, and a lock it held at that instant stays held there for ever. So in a
child the config forked, parallux refuses to be used -- ``goal``, a runner, a waiting ``sync()`` raise a
ConfigError at once instead of waiting for an engine that is not there -- and when the child reaches the
end of the config (returning, ``sys.exit()``, an exception) it ends as plain Python would end it: the same
exit status, the same message, its output flushed; without the end of the run (waiting for commands, the
summary, the run log), which is the parent's. Otherwise the child would wait for ever, holding the pipe
that ``parallux config.py | tee out`` waits on.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Callable, NoReturn

from ._errors import ConfigError
from ._exit import EXIT_FAILED, EXIT_SIGINT

forked = False  # True in a child the config forked
_parallux_pid = os.getpid()


def _in_child() -> None:
    global forked
    forked = True
    try:  # parallux's handlers stop the engine: the child's SIGTERM and SIGHUP are plain Python's again
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
    except ValueError:  # forked from another thread than the main one: it has no handlers to reset
        pass


os.register_at_fork(after_in_child=_in_child)


def refuse() -> None:
    """Raise in a child the config forked: the engine is in the parallux process only."""
    if forked:
        raise ConfigError(f"parallux cannot be used in a process the config forked (pid {os.getpid()}): its engine "
                          f"runs in the parallux process (pid {_parallux_pid}) only; submit and wait for commands "
                          f"there")


def end_child(exc: BaseException | None, describe: Callable[[BaseException], str]) -> NoReturn:
    """End a forked child that reached the end of the config (``exc``: how it ended) as Python would."""
    status = 0
    if isinstance(exc, SystemExit):
        status = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else EXIT_FAILED
        if not isinstance(exc.code, (int, type(None))):
            _say(str(exc.code))
    elif isinstance(exc, KeyboardInterrupt):
        status = EXIT_SIGINT
    elif exc is not None:
        _say(describe(exc))
        status = EXIT_FAILED
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # (closed by the config, or its reader gone)
            pass
    os._exit(status & 0xFF)


def _say(message: str) -> None:
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
