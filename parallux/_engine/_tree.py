"""The engine's task tree, its cancelling, and the halt policy.

::

    main
     ├── services nursery   one task per seat: its launcher (a child process, an SSH channel, ...)
     └── work cancel scope
          └── work nursery  one task per issued group (``goal.issue()``, ``goal.run()``)
               └── group nursery   one task per started command with a timeout (the group's own task
                                   waits for the others' ends: ``_ends``)

Cancelling the work scope (Ctrl-C, SIGTERM, an exception in the config, a "now" halt) cancels every command
task and group task; each one then stops its process trees through their launchers, inside a shielded
scope, before the engine ends. The seats stay up to carry those kills, and are closed last.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import trio

from .._handles import Command, Result
from .._status import FAILED_STATUSES

FLUSH_PERIOD = 0.05  # seconds between flushes of observers: at most this much run log is lost to a SIGKILL


class HaltPolicy:
    """What failures do: "never" keep going; "soon" start nothing new once ``after`` commands failed; "now"
    also stop the running ones. Only ``check=True`` failures count."""

    def __init__(self) -> None:
        self.mode = "never"
        self.after = 1
        self.failures = 0
        self.reason: str | None = None  # set once the run is halted

    def set(self, mode: str, after: int) -> None:
        self.mode, self.after = mode, after

    def count(self, command: Command, result: Result) -> bool:
        """Count a finished command; True when it is the failure that halts the run."""
        if not command.check or result.status not in FAILED_STATUSES:
            return False
        self.failures += 1
        if self.mode == "never" or self.failures < self.after or self.reason is not None:
            return False
        self.reason = (f"halted ({self.mode}) after {self.failures} command{'s' if self.failures > 1 else ''} "
                       "failed")
        return True


class TaskTree:
    """The nurseries of one engine, and the flags and scopes that cancel and end the run. It knows nothing of
    commands: the lifecycle starts its group tasks here, the facade says what ending the run means."""

    def __init__(self) -> None:
        self.cancelled = False
        self.hard_stop = False   # a second Ctrl-C: no grace for anything
        self.closing = False     # the seats are being closed: one that finishes connecting closes itself
        self.connecting: set[trio.CancelScope] = set()  # seats still connecting (SSH): Ctrl-C ends them
        self._services: trio.Nursery | None = None
        self._work: trio.Nursery | None = None
        self._work_scope: trio.CancelScope | None = None
        self._shutdown = trio.Event()

    async def main(self, ready: Callable[[], None], flush: Callable[[], None] | None,
                   finish: Callable[[], Awaitable[None]]) -> None:
        """The whole tree, from the engine's start to its end: ``finish()`` once shut down (the seats
        closed); ``flush()`` every FLUSH_PERIOD if given (observers that buffer)."""
        async with trio.open_nursery() as services:
            self._services = services
            with trio.CancelScope() as work_scope:
                self._work_scope = work_scope
                async with trio.open_nursery() as work:
                    self._work = work
                    flusher = trio.CancelScope()
                    if flush is not None:  # (on a dry run's autojumping clock a periodic task would spin the
                        # engine thread, starving the config's thread: only a run log needs it)
                        services.start_soon(self._flush_periodically, flusher, flush)
                    ready()
                    await self._shutdown.wait()
            # Cancelled (Ctrl-C, "now" halt, a failed scheduler function): the commands are stopped, but the
            # engine stays up until the config is done, so its calls keep working (and start nothing).
            await self._shutdown.wait()
            await finish()
            flusher.cancel()

    def start_service(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        assert self._services is not None
        self._services.start_soon(fn, *args)

    async def start_seat(self, serve: Callable[..., Awaitable[Any]]) -> None:
        assert self._services is not None
        await self._services.start(serve)

    def start_group(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        assert self._work is not None
        self._work.start_soon(fn, *args)

    def cancel(self, hard: bool) -> bool:
        """Stop the running commands (their tasks stop their trees: SIGTERM, grace, SIGKILL; no grace if
        hard); whether anything was left to cancel."""
        self.hard_stop = self.hard_stop or hard
        if self.cancelled and not hard:
            return False
        self.cancelled = True
        for connecting in self.connecting:
            connecting.cancel()
        self.stop_running()
        return True

    def stop_running(self) -> None:
        if self._work_scope is not None:
            self._work_scope.cancel()

    def request_shutdown(self) -> None:
        self._shutdown.set()

    async def close_seats(self, seats: list[Any]) -> None:
        """Close every seat at once: an SSH runner's close may wait (for its connection to close), and a run
        on several servers must not wait for them one after another."""
        self.closing = True
        async with trio.open_nursery() as closing:
            for seat in seats:
                closing.start_soon(seat.close, self.hard_stop)

    async def _flush_periodically(self, scope: trio.CancelScope, flush: Callable[[], None]) -> None:
        """Observers (the run log) buffer their writes; this bounds how long a record waits for the file."""
        with scope:
            while True:
                await trio.sleep(FLUSH_PERIOD)
                flush()
