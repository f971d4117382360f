"""The engine as the main thread holds it: one Trio loop in a worker thread, and the calls into it.

The config runs synchronously in the main thread and reaches the engine through Trio's thread token
(``trio.from_thread``). A global ``trio.CapacityLimiter`` (``setParallel``) and each seat's ``Load``
(``max_jobs``) count running commands; the scheduler starts a command only when it has room in both at once,
so the limits are never exceeded (see ``_lifecycle``).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import trio

from .._errors import plain_error
from .._handles import Completion, Group
from ._environment import Environments
from ._lifecycle import Lifecycle
from ._machines import Machines
from ._observers import Observers
from ._seat import Seat
from ._thread import LoopThread
from ._tree import HaltPolicy, TaskTree


class Engine(LoopThread):
    """Runs the Trio loop in a thread and carries commands from submission to result.

    ``clock`` is the loop's clock: a dry run (and the engine's unit tests) give Trio's autojumping
    MockClock, so that placements follow the real scheduling order in virtual time."""

    def __init__(self, run_id: str, *, clock: trio.abc.Clock | None = None) -> None:
        super().__init__(clock)
        self.run_id = run_id
        self.completion = Completion()
        self.observers = Observers()
        self.seats: list[Seat] = []
        self.halt = HaltPolicy()
        self.global_slots = trio.CapacityLimiter(math.inf)
        self.tree = TaskTree()
        self.commands = Lifecycle(run_id, completion=self.completion, observers=self.observers, tree=self.tree,
                                  halt=self.halt,
                                  global_slots=self.global_slots, seats=self.seats)
        self.scheduler = self.commands.scheduler
        # what the run records of its machines: their environments, probes, noise checks (off until the session
        # turns it on for a real run)
        self.environments = Environments(self.observers, self.tree, self.commands.schedule)
        self.machines = Machines(self.observers.notice, self.environments.joined)

    async def _main(self) -> None:
        await self.tree.main(self._ready.set, self.observers.flush if self.observers.flushing else None,
                             self._end)

    async def _end(self) -> None:
        self.commands.cancel_queued()
        await self.environments.finish(self.tree.hard_stop)
        await self.tree.close_seats(self.seats)

    def _crashed(self, exc: BaseException) -> None:
        self.completion.broken = exc  # every waiter raises instead of waiting for ever

    def _ended(self) -> None:
        self.completion.notify()

    def shutdown(self) -> None:
        """End the run: close every seat's launcher and let the engine thread finish."""
        self._from_main(self.tree.request_shutdown)

    def cancel(self, hard: bool = False) -> None:
        """Stop starting commands and stop the running ones (SIGTERM, grace, SIGKILL; at once if hard)."""
        self._from_main(self._cancel, hard)

    def _cancel(self, hard: bool) -> None:
        if not self.tree.cancel(hard):
            return
        self.commands.cancel_queued()
        if hard:
            for seat in self.seats:
                seat.closing = True  # (its launcher quits as asked: no new one is to replace it)
                if seat.client is not None:
                    seat.client.quit_now()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every submitted command has a result."""
        return self.completion.wait_for(lambda: self.commands.unfinished == 0, timeout, Completion.IDLE)

    # -- what the session reads -------------------------------------------------------------------------

    @property
    def halt_reason(self) -> str | None:
        return self.halt.reason

    @property
    def started_count(self) -> int:
        return self.commands.started

    @property
    def policy_error(self) -> BaseException | None:
        return self.commands.policy_error

    # -- seats, settings, submission (engine thread) -----------------------------------------------------

    async def add_seats(self, seats: list[Seat]) -> list[Exception | None]:
        """Start several seats at once (``setRunner()`` naming new hosts): the slowest connection sets the
        wait, not their sum. Each seat's error, or None; the ones that started stay in the given order."""
        errors: list[Exception | None] = [None] * len(seats)

        async def start(index: int) -> None:
            try:
                await self.add_seat(seats[index])
            except Exception as exc:  # the others go on; the caller reports every failure
                errors[index] = exc

        async with trio.open_nursery() as nursery:
            for index in range(len(seats)):
                nursery.start_soon(start, index)
        batch = set(seats)
        self.seats[:] = [s for s in self.seats if s not in batch] + [s for s in seats if s in self.seats]
        return errors

    async def add_seat(self, seat: Seat) -> None:
        """Start a seat's launcher (or connection); raises if it cannot be reached. The seat joins ``seats``
        the moment it has started, so that closing the seats never misses it -- and if the run is already
        being closed (Ctrl-C while it connected), it is closed at once. Ctrl-C during the connecting itself
        ends it with the seat not started."""
        tree = self.tree
        seat.machines, seat.turn = self.machines, self.commands.turn
        with trio.CancelScope() as connecting:
            tree.connecting.add(connecting)
            try:
                # (a launcher that died and is replaced, a connection that dropped: the display, the summary and
                # the run log hear it)
                await tree.start_seat(functools.partial(seat.serve, self.run_id, self.commands.schedule,
                                                        tell=self.observers.runner_event))
            except BaseExceptionGroup as group:  # a seat's own nursery wraps its error
                raise plain_error(group) from None
            finally:
                tree.connecting.discard(connecting)
        if connecting.cancelled_caught:
            return
        self.seats.append(seat)
        if tree.closing:
            await seat.close(tree.hard_stop)

    def set_parallel(self, limit: int | None) -> None:
        self.global_slots.total_tokens = math.inf if limit is None else limit
        self.commands.schedule()

    def set_policy(self, policy: Any) -> None:
        self.scheduler.policy = policy

    def set_halt(self, mode: str, failures: int) -> None:
        self.halt.set(mode, failures)

    def submit(self, group: Group, records: Sequence[dict[str, Any]] = ()) -> None:
        """Queue a group's commands, after the run log's records about them (its benchmarks)."""
        for record in records:
            self.observers.log(record)
        self.commands.submit(group)

    def tell_transfer(self, transfer: Any) -> None:
        self.observers.transfer(transfer)

    def has_work(self) -> bool:
        """Whether submitted commands are still without a result (engine thread)."""
        return self.commands.unfinished > 0
