"""The engine's observers: progress, the run log, the dry run's plan printer.

The engine calls them with ``(event, command, **details)`` for ``queued``, ``started``, ``retrying``,
``finished`` and ``quarantined``, and with ``(event, runner, **details)`` for what befalls a runner
(``launcher_restarted``); they record only, and their own threads do the slow parts.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

from .._handles import Command


class Observer(Protocol):
    def __call__(self, event: str, command: Command, **details: Any) -> None: ...


class Observers(list):  # type: ignore[type-arg]
    """The observers, in order; one that fails is dropped with a message, and the commands go on."""

    def observe(self, event: str, command: Command, **details: Any) -> None:
        for observer in list(self):
            try:
                observer(event, command, **details)
            except Exception as exc:  # a display or log that fails must not stop the commands
                self._drop(observer, exc)

    def _drop(self, observer: Any, exc: Exception) -> None:
        if observer in self:
            self.remove(observer)
        try:
            print(f"parallux: {type(observer).__name__} stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        except OSError:
            pass

    def queued(self, commands: list[Command]) -> None:
        """``queued`` for each of a group's commands: at once to observers that take them so (``queued_all``:
        the run log, progress), one by one to the others."""
        for observer in list(self):
            try:
                take_all = getattr(observer, "queued_all", None)
                if take_all is not None:
                    take_all(commands)
                else:
                    for command in commands:
                        observer("queued", command)
            except Exception as exc:
                self._drop(observer, exc)

    def transfer(self, transfer: Any) -> None:
        """A transfer started or ended: observers with a ``transfer`` method (the progress display) hear it."""
        for observer in self:
            hook = getattr(observer, "transfer", None)
            if hook is not None:
                hook(transfer)

    def notice(self, text: str) -> None:
        """A line about a runner: observers with a ``notice`` method (the progress display) show it."""
        for observer in self:
            hook = getattr(observer, "notice", None)
            if hook is not None:
                hook(text)

    def log(self, record: dict[str, Any]) -> None:
        """A record about no one command (a benchmark, the order): observers with a ``log`` method (the run
        log) write it."""
        for observer in self:
            hook = getattr(observer, "log", None)
            if hook is not None:
                hook(record)

    def runner_event(self, event: str, runner: Any, **details: Any) -> None:
        """Something that befell a runner, not a command (``launcher_restarted``): observers with a
        ``runner_event`` method (the progress, the run log) hear it."""
        for observer in self:
            hook = getattr(observer, "runner_event", None)
            if hook is not None:
                hook(event, runner, **details)

    @property
    def flushing(self) -> bool:
        """Whether an observer buffers its writes (the run log), so that a periodic flush is needed."""
        return any(hasattr(observer, "flush") for observer in self)

    def flush(self) -> None:
        for observer in self:
            flush = getattr(observer, "flush", None)
            if flush is not None:
                flush()
