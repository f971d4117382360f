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


HELD = ("started", "finished")  # the events ``hold`` keeps for ``release``


class Observers(list):  # type: ignore[type-arg]
    """The observers, in order; one that fails is dropped with a message, and the commands go on."""

    def __init__(self, *observers: Any) -> None:
        super().__init__(observers)
        self._held: list[tuple[str, Command, dict[str, Any]]] | None = None

    def hold(self) -> None:
        """Keep ``started`` and ``finished`` events from now until ``release``: the engine settles the ends it
        heard together, and starts what they freed room for, in one step -- and observers with
        ``started_all``/``finished_all`` take each run of them at once."""
        self._held = []

    def release(self) -> None:
        """Hand on the events held since ``hold``, in order."""
        held, self._held = self._held or [], None
        start = 0
        for end in range(1, len(held) + 1):
            if end == len(held) or held[end][0] != held[start][0]:
                self._deliver(held[start][0], [(command, details) for _, command, details in held[start:end]])
                start = end

    def _deliver(self, event: str, items: list[tuple[Command, dict[str, Any]]]) -> None:
        for observer in list(self):
            try:
                take_all = getattr(observer, f"{event}_all", None)
                if take_all is not None:
                    take_all(items)
                else:
                    for command, details in items:
                        observer(event, command, **details)
            except Exception as exc:
                self._drop(observer, exc)

    def observe(self, event: str, command: Command, **details: Any) -> None:
        if self._held is not None and event in HELD:
            self._held.append((event, command, details))
            return
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
        self._deliver("queued", [(command, {}) for command in commands])

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
