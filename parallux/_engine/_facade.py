"""The engine as the main thread holds it: one Trio loop in a worker thread, and the calls into it.

The config runs synchronously in the main thread and reaches the engine through Trio's thread token
(``trio.from_thread``). A global ``trio.CapacityLimiter`` (``setParallel``) and one per seat (``max_jobs``)
count running commands; the scheduler starts a command only when it can borrow from both at once, so the
limits are never exceeded (see ``_lifecycle``).
"""

from __future__ import annotations

import functools
import math
import sys
import threading
from typing import Any, Awaitable, Callable, Protocol, TypeVar

import trio

from .._errors import plain_error
from .._handles import Command, Completion, Group
from ._lifecycle import Lifecycle
from ._seat import Seat
from ._tree import HaltPolicy, TaskTree

T = TypeVar("T")


class Observer(Protocol):
    def __call__(self, event: str, command: Command, **details: Any) -> None: ...


class Engine:
    """Runs the Trio loop in a thread and carries commands from submission to result.

    ``clock`` is the loop's clock: a dry run (and the engine's unit tests) give Trio's autojumping
    MockClock, so that placements follow the real scheduling order in virtual time."""

    def __init__(self, run_id: str, *, clock: trio.abc.Clock | None = None) -> None:
        self.run_id = run_id
        self.clock = clock
        self.completion = Completion()
        self.observers: list[Observer] = []
        self.seats: list[Seat] = []
        self.halt = HaltPolicy()
        self.global_slots = trio.CapacityLimiter(math.inf)
        self.tree = TaskTree()
        self.commands = Lifecycle(run_id, completion=self.completion, observe=self.observe,
                                  flush=self.flush_observers, tree=self.tree, halt=self.halt,
                                  global_slots=self.global_slots)
        self.scheduler = self.commands.scheduler
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None

    # -- the thread (main thread) ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._thread_main, name="parallux-engine", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._crash is not None:
            raise self._crash

    def _thread_main(self) -> None:
        try:
            trio.run(self._main, clock=self.clock)
        except BaseException as exc:  # surfaced to the main thread by join() and by every waiter
            self._crash = exc
            self.completion.broken = exc
        finally:
            self._ready.set()
            self._stopped.set()
            self.completion.notify()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        await self.tree.main(self._ready.set, self.flush_observers if self.flushing else None, self._end)

    async def _end(self) -> None:
        self.commands.cancel_queued()
        await self.tree.close_seats(self.seats)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a synchronous function in the engine thread and return its result."""
        self._check_alive()
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def call_async(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        self._check_alive()
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def _check_alive(self) -> None:
        if self._crash is not None:
            raise RuntimeError("the parallux engine stopped") from self._crash

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the engine thread to end. Waits on an event, not ``Thread.join``: a KeyboardInterrupt
        inside ``join`` can leave CPython believing a still-running thread has stopped."""
        return self._stopped.wait(timeout)

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
                if seat.client is not None:
                    seat.client.quit_now()

    def _from_main(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._thread is None or self._stopped.is_set():
            return
        try:
            self.call(fn, *args)
        except trio.RunFinishedError:
            pass

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

    @property
    def flushing(self) -> bool:
        """Whether an observer buffers its writes (the run log), so that a periodic flush is needed."""
        return any(hasattr(observer, "flush") for observer in self.observers)

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
        with trio.CancelScope() as connecting:
            tree.connecting.add(connecting)
            try:
                await tree.start_seat(functools.partial(seat.serve, self.run_id, self.commands.schedule))
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

    def submit(self, group: Group) -> None:
        self.commands.submit(group)

    # -- observers --------------------------------------------------------------------------------------

    def observe(self, event: str, command: Command, **details: Any) -> None:
        for observer in list(self.observers):
            try:
                observer(event, command, **details)
            except Exception as exc:  # a display or log that fails must not stop the commands
                self.observers.remove(observer)
                try:
                    print(f"parallux: {type(observer).__name__} stopped: {type(exc).__name__}: {exc}",
                          file=sys.stderr)
                except OSError:
                    pass

    def tell_transfer(self, transfer: Any) -> None:
        """A transfer started or ended: observers with a ``transfer`` method (the progress display) hear it."""
        for observer in self.observers:
            hook = getattr(observer, "transfer", None)
            if hook is not None:
                hook(transfer)

    def flush_observers(self) -> None:
        for observer in self.observers:
            flush = getattr(observer, "flush", None)
            if flush is not None:
                flush()
