"""The ends a running group waits for: its commands without a timeout have no Trio task of their own.

A task per command cost 16-25 µs of CPU (spawned, parked on its job's ``ended``, woken, exited) out of
the 150 the engine spends on a command. A command without a timeout needs no task to wait for its end: its
job calls ``heard`` when it ends (its exit event, its launcher gone), and the group's own task, which waits
here anyway for the group's last end, settles the ends heard in one wake-up per turn of the loop -- or, when
they are heard in a turn of the engine (``_turn``: a read of a launcher's events), the reader settles them as
the turn ends, and the group's task is not woken at all. A command with a timeout is held here too; a task
of its own (``Lifecycle._deadline``) only waits for its deadline, and takes the command from here to stop it if
the time runs out. When the run is cancelled, the group's task stops the commands it holds, all at once,
before it ends (``Lifecycle``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio

from .._protocol import Job
from .._turn import NO_TURN, Turn


class GroupEnds:
    """The running commands of one group (all but a timeout's that expired), and the ends heard of them."""

    def __init__(self, turn: Turn = NO_TURN) -> None:
        self.turn = turn  # the engine's: ends heard in a turn are settled as it ends
        self.running: dict[Job, tuple[Any, ...]] = {}  # job -> (command, seat, lease, launched)
        self.heard_ends: deque[Job] = deque()
        self.done = False  # the group's last command finished
        self._wake = trio.Event()

    def watch(self, job: Job, entry: tuple[Any, ...]) -> None:
        self.running[job] = entry
        if job.done:  # (its launcher was gone already)
            self.heard(job)
        else:
            job.on_end = self.heard

    def unwatch(self, job: Job) -> bool:
        """A command whose timeout expired: its deadline's task takes over its end (``Lifecycle._deadline``).
        False if it is no longer held (the run's cancellation ended it meanwhile)."""
        if self.running.pop(job, None) is None:
            return False
        job.on_end = None
        return True

    def heard(self, job: Job) -> None:
        self.heard_ends.append(job)
        if len(self.heard_ends) == 1 and not self.turn.hear(self):  # (a first end enters the turn, and the
            self._wake.set()  # ends after it are settled with it; outside a turn, the first wakes the task)

    def wake(self) -> None:
        """Its task settles what was heard (a turn that will not: the run is being stopped)."""
        self._wake.set()

    def set(self) -> None:
        """The group's last command finished (whichever way): its task may end."""
        self.done = True
        self._wake.set()

    def take(self) -> tuple[Any, ...] | None:
        """An end heard and not settled yet (its command, seat, lease and launch), or None."""
        while self.heard_ends:
            entry = self.running.pop(self.heard_ends.popleft(), None)
            if entry is not None:
                return entry
        return None

    async def wait(self) -> None:
        """Until an end is heard or the group is done."""
        while not self.heard_ends and not self.done:
            await self._wake.wait()
            self._wake = trio.Event()
