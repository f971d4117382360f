"""``after=``: commands that wait, outside the scheduler, for other commands to end ok (SPEC 18).

A command whose dependencies have not all ended when its group is queued waits here, not in the scheduler's
queues: it holds no slot and heads no class, so the commands behind it start as if it were not there (the
scheduler stays work-conserving, SPEC 4). Each unfinished dependency lists its waiting dependents
(``Command.dependents``); when it ends, each of them is released once all of its dependencies ended ``ok``
(``planned`` in a dry run, so that the plan follows them), or else ends ``cancelled`` without starting, with
an error naming the dependency -- and so do its own dependents, transitively. That cascade goes through a
work list, not recursion, so that a chain of 10,000 commands failing at its head does not exhaust the stack.

Every waiting command ends: each of its dependencies is queued, running or waiting itself, and each of those
ends whatever happens (run, halted, cancelled), which ends it in turn.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Sequence

from .._handles import Command, Result
from .._status import Status

RELEASING = frozenset({Status.OK, Status.PLANNED})
NOT_STARTED = "not started: "


class Dependencies:
    """The commands waiting for their dependencies, and what ends them (engine thread only).

    ``release(command)``: all its dependencies ended ok, it may be queued; ``finish(command, result)``: the
    lifecycle's end of a command, which calls :meth:`ended` for one that has dependents."""

    def __init__(self, release: Callable[[Command], None], finish: Callable[[Command, Result], None]) -> None:
        self._release = release
        self._finish = finish
        self._waiting: dict[Command, int] = {}  # a waiting command -> how many of its dependencies have not ended
        self._causes: dict[Command, str] = {}  # a command cancelled for a dependency -> the first failure's words
        self._ended: deque[Command] = deque()  # dependencies that ended, their dependents still to settle
        self._settling = False

    def hold(self, commands: Sequence[Command]) -> Sequence[Command]:
        """The commands that may be queued now; the others wait here, or ended (a dependency failed)."""
        dependent = [command for command in commands if command.after]
        if not dependent:
            return commands
        held = {command for command in dependent if self._hold(command)}
        return [command for command in commands if command not in held]

    def _hold(self, command: Command) -> bool:
        """Whether ``command`` must not be queued now: it waits for a dependency, or one failed (it ended)."""
        pending = [dependency for dependency in command.after if dependency.result is None]
        failed = next((d for d in command.after if d.result is not None and d.result.status not in RELEASING), None)
        if failed is not None:
            self._cancel(command, failed)
            return True
        if not pending:
            return False
        for dependency in pending:
            if dependency.dependents is None:
                dependency.dependents = []
            dependency.dependents.append(command)
        self._waiting[command] = len(pending)
        return True

    def ended(self, command: Command) -> None:
        """``command`` ended (its result is set): release or cancel the commands waiting for it."""
        self._ended.append(command)
        if self._settling:  # (called back by a cancel below: the loop running takes it)
            return
        self._settling = True
        try:
            while self._ended:
                self._settle(self._ended.popleft())
        finally:
            self._settling = False

    def _settle(self, dependency: Command) -> None:
        dependents, dependency.dependents = dependency.dependents or [], None
        released = dependency.result is not None and dependency.result.status in RELEASING
        for command in dependents:
            if command.result is not None:  # cancelled already, for another of its dependencies
                continue
            if not released:
                self._waiting.pop(command, None)
                self._cancel(command, dependency)
                continue
            left = self._waiting[command] - 1
            if left:
                self._waiting[command] = left
            else:
                del self._waiting[command]
                self._release(command)

    def _cancel(self, command: Command, dependency: Command) -> None:
        """End ``command`` without starting it, naming the dependency and, when that one was itself cancelled
        for a dependency, the failure at the root (one name, not the chain: a long chain's errors stay short)."""
        result = dependency.result
        assert result is not None
        cause = f"its dependency {describe(dependency)} ended {result.status}"
        root = self._causes.get(dependency)
        if root is not None:
            cause += f" ({root})"
        elif result.status == Status.CANCELLED and result.error:
            cause += f" ({result.error})"
        self._causes[command] = root or cause
        self._finish(command, Result(command, Status.CANCELLED, error=NOT_STARTED + cause))


def describe(command: Command) -> str:
    """A dependency as its dependents' errors name it: a benchmark's execution by the benchmark and label."""
    if command.bench is not None:
        return f"{command.bench.name!r} ({command.repetition})"
    return f"{command.name!r} (seq {command.seq})"
