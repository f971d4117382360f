"""The engine: one Trio event loop in a worker thread that owns all scheduling and I/O.

The config runs synchronously in the main thread and reaches the engine through Trio's thread token
(``trio.from_thread``). Inside, the task tree is::

    main
     ├── services nursery   one task per runner: its launcher (a child process or an SSH channel)
     └── work cancel scope
          └── work nursery  one task per issued group (``goal.issue()``, ``goal.run()``)
               └── group nursery   one task per started command

A global ``trio.CapacityLimiter`` (``setParallel``) and one per runner (``max_jobs``) count running commands;
the scheduler starts a command only when it can borrow from both at once, so the limits are never exceeded.
Cancelling the work scope (Ctrl-C, SIGTERM, an exception in the config, a halt) cancels every command task;
each one then stops its process tree through its launcher, inside a shielded scope, before the engine ends.
"""

from __future__ import annotations

import math
import sys
import threading
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol, TypeVar

import trio

from ._cores import Lease
from ._errors import SchedulerPolicyError, plain_error
from ._handles import Command, Completion, Group, Result
from ._scheduler import Scheduler
from ._status import FAILED_STATUSES

if TYPE_CHECKING:
    from ._runner import Launched, Runner

T = TypeVar("T")
FLUSH_PERIOD = 0.05  # seconds between flushes of observers: at most this much run log is lost to a SIGKILL
POLICY_REPOLL = 0.2  # seconds before a scheduler function that said "wait" is asked again
DRY_RUN_AUTOJUMP = 0.001  # real seconds of an idle loop before a dry run's virtual clock jumps
QUARANTINE_AFTER = 5  # commands in a row that could not be executed on a runner before it leaves the pool
CANNOT_EXECUTE = (126, 127)  # the shell's "cannot execute" and "not found"


class Observer(Protocol):
    def __call__(self, event: str, command: Command, **details: Any) -> None: ...


class Engine:
    """Runs the Trio loop in a thread and carries commands from submission to result."""

    def __init__(self, run_id: str, *, dry_run: bool = False) -> None:
        self.run_id = run_id
        self.dry_run = dry_run
        self.completion = Completion()
        self.observers: list[Observer] = []
        self.hard_stop = False
        self.cancelled = False
        self.started_count = 0
        self.unfinished = 0            # submitted commands without a result yet
        self.failures = 0
        self.halt_mode = "never"
        self.halt_after = 1
        self.halt_reason: str | None = None
        self.policy_error: BaseException | None = None
        self.runners: list[Runner] = []
        self._repoll_pending = False
        self._connecting: set[trio.CancelScope] = set()  # runners still connecting (SSH): Ctrl-C ends them
        self._closing_runners = False
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None
        self._services: trio.Nursery | None = None
        self._work: trio.Nursery | None = None
        self._work_scope: trio.CancelScope | None = None
        self._shutdown: trio.Event | None = None
        self.global_slots: trio.CapacityLimiter | None = None
        self.scheduler: Scheduler | None = None

    # -- thread lifetime (main thread) -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._thread_main, name="parallux-engine", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._crash is not None:
            raise self._crash

    def _thread_main(self) -> None:
        clock = None
        if self.dry_run:  # trio.testing imports pytest: only a dry run pays for it
            from trio.testing import MockClock
            # Jump once the loop has been idle for 1 ms (real): with a threshold of 0 an idle loop polls
            # without ever sleeping, and that spinning thread starves the config's thread of the GIL.
            clock = MockClock(autojump_threshold=DRY_RUN_AUTOJUMP)
        try:
            trio.run(self._main, clock=clock)
        except BaseException as exc:  # surfaced to the main thread by join() and by every waiter
            self._crash = exc
            self.completion.broken = exc
        finally:
            self._ready.set()
            self._stopped.set()
            self.completion.notify()

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
        """End the run: close every runner's launcher and let the engine thread finish."""
        if self._thread is None or self._stopped.is_set():
            return
        try:
            self.call(self._request_shutdown)
        except trio.RunFinishedError:
            pass

    def cancel(self, hard: bool = False) -> None:
        """Stop starting commands and stop the running ones (SIGTERM, grace, SIGKILL; at once if hard)."""
        if self._thread is None or self._stopped.is_set():
            return
        try:
            self.call(self._cancel, hard)
        except trio.RunFinishedError:
            pass

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every submitted command has a result."""
        return self.completion.wait_for(lambda: self.unfinished == 0, timeout, Completion.IDLE)

    # -- inside the loop ---------------------------------------------------------------------------------------

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._shutdown = trio.Event()
        self.global_slots = trio.CapacityLimiter(math.inf)
        self.scheduler = Scheduler(self.global_slots, self._start_command)
        async with trio.open_nursery() as services:
            self._services = services
            with trio.CancelScope() as work_scope:
                self._work_scope = work_scope
                async with trio.open_nursery() as work:
                    self._work = work
                    flusher = trio.CancelScope()
                    if not self.dry_run:  # a dry run writes no log; and on its autojumping clock a periodic
                        # task would spin the engine thread, starving the config's thread of the GIL
                        services.start_soon(self._flush_periodically, flusher)
                    self._ready.set()
                    await self._shutdown.wait()
            # Cancelled (Ctrl-C, "now" halt, a failed scheduler function): the commands are stopped, but the
            # engine stays up until the config is done, so its calls keep working (and start nothing).
            await self._shutdown.wait()
            self._cancel_queued()
            await self._close_runners()
            flusher.cancel()

    async def _close_runners(self) -> None:
        """Close every runner at once: an SSH runner's close may wait (for its connection to close, up to its
        CLOSE_WAIT), and a run on several servers must not wait for them one after another."""
        self._closing_runners = True  # a runner that finishes connecting from now on closes itself
        async with trio.open_nursery() as closing:
            for runner in self.runners:
                closing.start_soon(runner._close)

    def _request_shutdown(self) -> None:
        assert self._shutdown is not None
        self._shutdown.set()

    def _cancel(self, hard: bool) -> None:
        self.hard_stop = self.hard_stop or hard
        if self.cancelled and not hard:
            return
        self.cancelled = True
        for connecting in self._connecting:
            connecting.cancel()
        self._cancel_queued()
        if self._work_scope is not None:
            self._work_scope.cancel()
        if hard:
            for runner in self.runners:
                if runner.client is not None:
                    runner.client.post({"op": "quit", "grace": 0})

    def _cancel_queued(self) -> None:
        assert self.scheduler is not None
        for command in self.scheduler.drain():
            self._finish(command, Result(command, "cancelled"))
        self.flush_observers()

    async def add_runners(self, runners: list[Runner]) -> list[Exception | None]:
        """Start several runners at once (``setRunner()`` naming new hosts): the slowest connection sets the
        wait, not their sum. Each runner's error, or None; the ones that started stay in the given order."""
        errors: list[Exception | None] = [None] * len(runners)

        async def start(index: int) -> None:
            try:
                await self.add_runner(runners[index])
            except Exception as exc:  # the others go on; the caller reports every failure
                errors[index] = exc

        async with trio.open_nursery() as nursery:
            for index in range(len(runners)):
                nursery.start_soon(start, index)
        batch = set(runners)
        self.runners[:] = [r for r in self.runners if r not in batch] + [r for r in runners if r in self.runners]
        return errors

    async def add_runner(self, runner: Runner) -> None:
        """Start a runner's launcher (or connection); raises if it cannot be reached. The runner joins
        ``self.runners`` the moment it has started, so that closing the runners never misses it -- and if the
        run is already being closed (Ctrl-C while it connected), it is closed at once. Ctrl-C during the
        connecting itself ends it with the runner not started."""
        with trio.CancelScope() as connecting:
            self._connecting.add(connecting)
            try:
                await self._services_nursery().start(runner._serve, self)
            except BaseExceptionGroup as group:  # a runner's own nursery wraps its error
                raise plain_error(group) from None
            finally:
                self._connecting.discard(connecting)
        if connecting.cancelled_caught:
            return
        self.runners.append(runner)
        if self._closing_runners:
            await runner._close()

    def _services_nursery(self) -> trio.Nursery:
        assert self._services is not None
        return self._services

    def set_parallel(self, limit: int | None) -> None:
        assert self.global_slots is not None
        self.global_slots.total_tokens = math.inf if limit is None else limit
        self._schedule()

    def set_policy(self, policy: Any) -> None:
        assert self.scheduler is not None
        self.scheduler.policy = policy

    def runner_lost(self, runner: Runner) -> None:
        """A runner's launcher went away: commands that can run nowhere else end with an error."""
        self._schedule()

    # -- submission ----------------------------------------------------------------------------------------------

    def submit(self, group: Group) -> None:
        """Queue a group's commands (engine thread); results of pre-resolved commands are set at once."""
        to_run = []
        for command in group.commands:
            command.group = group
            self.unfinished += 1
            if command.resumed_result is not None:
                self._finish(command, command.resumed_result)
            else:
                to_run.append(command)
                self.observe("queued", command)
        if self.cancelled or self.halted:
            for command in to_run:
                self._finish(command, Result(command, "cancelled", error=self.halt_reason))
            return
        if to_run:
            assert self._work is not None
            self._work.start_soon(self._run_group, group, to_run)

    async def _run_group(self, group: Group, commands: list[Command]) -> None:
        """One nursery per issued group; the scheduler starts the group's commands inside it."""
        if self.cancelled or self.halted:  # stopped between submission and this task's first step
            for command in commands:
                self._finish(command, Result(command, "cancelled"))
            return
        group_done = trio.Event()
        group.done_event = group_done  # type: ignore[attr-defined]
        async with trio.open_nursery() as nursery:
            group.nursery = nursery  # type: ignore[attr-defined]
            assert self.scheduler is not None
            self.scheduler.submit(commands)
            self._schedule()
            if group.remaining:
                await group_done.wait()
        group.nursery = group.done_event = None  # type: ignore[attr-defined]  # nothing kept per finished group

    def _schedule(self) -> None:
        """Start whatever fits now."""
        if self.scheduler is None or self.cancelled:
            return
        try:
            unrunnable = self.scheduler.schedule()
        except SchedulerPolicyError as exc:
            self.policy_error = exc
            self._cancel(False)
            return
        if self.scheduler.declined and not self._repoll_pending:
            self._repoll_pending = True  # nothing may end to trigger another pass: ask the policy again soon
            self._services_nursery().start_soon(self._repoll)
        for command in unrunnable:
            why = "; ".join(f"{r.describe()}: {r.quarantined or (r.client.gone if r.client else 'not connected')}"
                            for r in command.candidates)
            self._finish(command, Result(command, "error", error=f"no runner left to run it ({why})"))

    async def _repoll(self) -> None:
        await trio.sleep(POLICY_REPOLL)
        self._repoll_pending = False
        self._schedule()

    def flush_observers(self) -> None:
        for observer in self.observers:
            flush = getattr(observer, "flush", None)
            if flush is not None:
                flush()

    async def _flush_periodically(self, scope: trio.CancelScope) -> None:
        """Observers (the run log) buffer their writes; this bounds how long a record waits for the file."""
        with scope:
            while True:
                await trio.sleep(FLUSH_PERIOD)
                self.flush_observers()

    def _start_command(self, command: Command, runner: Runner, lease: Lease | None) -> None:
        assert self.global_slots is not None and runner.slots is not None
        self.global_slots.acquire_on_behalf_of_nowait(command)
        runner.slots.acquire_on_behalf_of_nowait(command)
        runner.active += 1
        self.started_count += 1
        command.cores = lease.cores if lease is not None else ()
        command.numa_node = lease.numa_node if lease is not None else command.requested_numa_node
        command.work_dir = runner._work_dir_of(command.work_relpath)
        command.runner = runner  # last: assigned() turns true only once everything above is set
        launched: Launched | Exception | None = None
        if self.dry_run:
            self.observe("planned", command, request=runner._request_for(self, command, lease))
        else:
            self.observe("started", command)
            try:
                launched = runner._launch(self, command, lease)  # no task switch between a free slot and a launch
            except Exception as exc:  # reported by the command's task, as its result
                launched = exc
        command.group.nursery.start_soon(  # type: ignore[union-attr]
            self._run_command, command, runner, lease, launched)

    async def _run_command(self, command: Command, runner: Runner, lease: Lease | None,
                           launched: Launched | Exception | None) -> None:
        result: Result | None = None
        try:
            if isinstance(launched, Exception):
                raise launched
            result = await runner._execute(self, command, lease, launched)
        except trio.Cancelled:
            result = Result(command, "cancelled")
            raise
        except Exception as exc:  # a bug in a transport must end this command, not the whole run
            result = Result(command, "error", error=f"{type(exc).__name__}: {exc}")
        finally:
            if lease is not None and runner.allocator is not None:
                runner.allocator.release(lease)
            assert self.global_slots is not None and runner.slots is not None
            self.global_slots.release_on_behalf_of(command)
            runner.slots.release_on_behalf_of(command)
            runner.active -= 1
            result = result or Result(command, "cancelled")
            command.attempts.append(result.attempt_entry())
            self._note_execution(runner, command, result)
            if self._should_retry(command, result):
                self.observe("retrying", command, result=result)
                command.attempt += 1
                assert self.scheduler is not None
                self.scheduler.requeue(command)
            else:
                self._finish(command, result)
            self._schedule()

    def _should_retry(self, command: Command, result: Result) -> bool:
        if command.attempt >= command.retries or self.cancelled or self.halted:
            return False
        if command.retry_on is None:
            return result.status in FAILED_STATUSES
        return result.status in command.retry_on or (result.status == "failed"
                                                      and result.returncode in command.retry_on)

    def _note_execution(self, runner: Runner, command: Command, result: Result) -> None:
        """Count the commands in a row that could not be executed on a runner; at QUARANTINE_AFTER, take the
        runner out of the pool: a broken host (a binary without its executable bit, a missing program, a
        full disk) must not eat the whole queue and every retry in milliseconds."""
        command.avoid = runner if could_not_execute(result) else None
        if runner.quarantined is not None or not runner.alive:
            return
        if command.avoid is None:
            runner.unexecuted_in_a_row = 0
            return
        runner.unexecuted_in_a_row += 1
        if runner.unexecuted_in_a_row >= QUARANTINE_AFTER:
            runner.quarantined = (f"taken out of the pool: {runner.unexecuted_in_a_row} commands in a row could "
                                  f"not be executed")
            self.observe("quarantined", command, result=result, runner=runner)

    @property
    def halted(self) -> bool:
        return self.scheduler is not None and self.scheduler.halted is not None

    def set_halt(self, mode: str, failures: int) -> None:
        """never: keep going; soon: start nothing new after ``failures`` failures; now: also stop running ones."""
        self.halt_mode = mode
        self.halt_after = failures

    def _finish(self, command: Command, result: Result) -> None:
        result.run_id = result.run_id or self.run_id
        result.attempts = result.attempts or command.attempts
        command.result = result
        self.unfinished -= 1
        if command.check and result.status in FAILED_STATUSES:
            self.failures += 1
            self._maybe_halt()
        group = command.group
        if group is not None:
            group.remaining -= 1
            if group.remaining == 0 and getattr(group, "done_event", None) is not None:
                group.done_event.set()
        self.observe("finished", command, result=result)
        self.completion.finished(command, self.unfinished == 0)

    def _maybe_halt(self) -> None:
        if self.halt_mode == "never" or self.failures < self.halt_after or self.halted:
            return
        assert self.scheduler is not None
        self.scheduler.halted = f"{self.failures} command{'s' if self.failures > 1 else ''} failed"
        self.halt_reason = f"halted ({self.halt_mode}) after {self.scheduler.halted}"
        for command in self.scheduler.drain():
            self._finish(command, Result(command, "cancelled", error=self.halt_reason))
        if self.halt_mode == "now" and self._work_scope is not None:
            self._work_scope.cancel()

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


def could_not_execute(result: Result) -> bool:
    """The runner could not run it at all: a launch or transport error (not another run's work dir lock), or
    the shell's 126/127."""
    if result.status == "error":
        return result._kind != "locked"
    return result.status == "failed" and result.returncode in CANNOT_EXECUTE
