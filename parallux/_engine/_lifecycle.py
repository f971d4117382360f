"""A command from submission to result.

(with ``after=``: waiting for its dependencies, ``_dependencies``) -> queued (the scheduler's queues) ->
placed and launched in one scheduling step (:meth:`Lifecycle.start`: slots and a core lease taken, the
request sent to the launcher) -> waited for, under its timeout (:meth:`Lifecycle._deadline`) -> stopped when the
timeout expires or the run is cancelled (TERM, grace, KILL, shielded, so its process tree is dead before
the task ends) -> retried, or finished: its result stored, its slots and lease returned, whoever waits for
it woken (and, with ``after=``, its dependents released or cancelled).

Whether an attempt's end is retried, and whether its runner leaves the pool, is ``_attempts``'.
"""

from __future__ import annotations

import trio

from .._errors import SchedulerPolicyError
from .._handles import Command, Completion, Group, Result
from .._resources import Lease
from .._scheduler import Scheduler
from .._status import Status
from .._turn import Turn
from ._attempts import Attempts
from ._dependencies import Dependencies
from ._ends import GroupEnds
from ._launched import Launched
from ._observers import Observers
from ._seat import KILL_GRACE, Seat
from ._tree import HaltPolicy, TaskTree

POLICY_REPOLL = 0.2  # seconds before a scheduler function that said "wait" is asked again


class Lifecycle:
    """Carries commands from submission to result (engine thread)."""

    def __init__(self, run_id: str, *, completion: Completion, observers: Observers,
                 tree: TaskTree, halt: HaltPolicy, global_slots: trio.CapacityLimiter,
                 seats: list[Seat] | None = None) -> None:
        self.run_id = run_id
        self.seats = seats if seats is not None else []  # the engine's (for a batch allocation's nodes)
        self.completion = completion
        self.observers = observers
        self.observe = observers.observe
        self.tree = tree
        self.halt = halt
        self.global_slots = global_slots
        self.scheduler = Scheduler(global_slots, self.start)
        self.dependencies = Dependencies(self._release, self.finish)  # after=: commands waiting for others
        self.unfinished = 0   # submitted commands without a result yet
        self.started = 0      # commands started (attempts), for the exit status of a config error
        self.policy_error: BaseException | None = None  # the setScheduler function failed: the run ends
        self._repoll_pending = False
        self.attempts = Attempts(tree, halt, self.observe)  # (retried? its runner quarantined?)
        self.turn = Turn(self._settle_heard)  # (the launcher clients' readers hold it: see _turn)

    # -- submission and scheduling ---------------------------------------------------------------------

    def submit(self, group: Group) -> None:
        """Queue a group's commands; results of pre-resolved (resumed) commands are set at once."""
        to_run, resumed = [], []
        for command in group.commands:
            command.group = group
            (to_run if command.resumed_result is None else resumed).append(command)
        self.unfinished += len(group.commands)
        self.observers.queued(to_run)
        for command in resumed:
            self.finish(command, command.resumed_result)
        if self.tree.cancelled or self.halt.reason:
            for command in to_run:
                self.finish(command, Result(command, Status.CANCELLED, error=self.halt.reason))
            return
        if to_run:
            self.tree.start_group(self._run_group, group, to_run)

    async def _run_group(self, group: Group, commands: list[Command]) -> None:
        """One nursery per issued group; the scheduler starts the group's commands inside it."""
        if self.tree.cancelled or self.halt.reason:  # stopped between submission and this task's first step
            for command in commands:
                self.finish(command, Result(command, Status.CANCELLED))
            return
        group._done = ends = GroupEnds(self.turn)
        async with trio.open_nursery() as nursery:
            group._nursery = nursery
            self.scheduler.submit(self.dependencies.hold(commands))
            self.schedule()
            await self._settle(group, ends)
        group._nursery = group._done = None  # nothing kept per finished group

    async def _settle(self, group: Group, ends: GroupEnds) -> None:
        """Settle the ends of the group's commands that no turn settled (``_turn``), until its last one
        finished. When the run is cancelled, stop the ones it still holds first, all at once."""
        try:
            while group.remaining:
                await ends.wait()
                self._settle_ends([ends])
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                while (entry := ends.take()) is not None:  # (they ended before the cancel: as they ended)
                    self._ended(*entry)
                grace = 0 if self.tree.hard_stop else KILL_GRACE
                async with trio.open_nursery() as stopping:
                    for _command, seat, _lease, launched in ends.running.values():
                        stopping.start_soon(seat.stop, launched, grace, "cancelled")
                for job in list(ends.running):
                    command, seat, lease, _launched = ends.running.pop(job)
                    job.on_end = None
                    self._end(command, seat, lease, Result(command, Status.CANCELLED))
            raise

    def _settle_heard(self, heard: list[GroupEnds]) -> None:
        """The end of a turn in which these groups' ends were heard: settled here -- unless the run is being
        stopped, which their own tasks do (see ``_settle``)."""
        if self.tree.cancelled:
            for ends in heard:
                ends.wake()
        else:
            self._settle_ends(heard)

    def _settle_ends(self, heard: list[GroupEnds]) -> None:
        """Settle the ends heard of these groups' commands, then one scheduling pass for them all: it starts
        what they freed room for."""
        batch_seats = []  # (a batch node that went idle: told once the pass has run)
        self.observers.hold()  # (their ends and the starts that follow: to the observers at once)
        try:
            for ends in heard:
                while (entry := ends.take()) is not None:
                    self._ended(*entry, scheduled=False)
                    if entry[1].batch is not None:
                        batch_seats.append(entry[1])
            self.schedule()
        finally:
            self.observers.release()
        for seat in batch_seats:
            self._after_pass(seat)

    def schedule(self) -> None:
        """Start whatever fits now; end what can run nowhere."""
        if self.tree.cancelled or self.halt.reason:
            return
        try:
            unrunnable = self.scheduler.schedule()
        except SchedulerPolicyError as exc:
            self.policy_error = exc
            self.tree.cancel(False)
            self.cancel_queued()
            return
        if self.scheduler.declined and not self._repoll_pending:
            self._repoll_pending = True  # nothing may end to trigger another pass: ask the policy again soon
            self.tree.start_service(self._repoll)
        for command in unrunnable:
            why = "; ".join(f"{s.describe()}: {gone_because(s)}" for s in command.candidates)
            self.finish(command, Result(command, Status.ERROR, error=f"no runner left to run it ({why})"))

    async def _repoll(self) -> None:
        await trio.sleep(POLICY_REPOLL)
        self._repoll_pending = False
        self.schedule()

    def _release(self, command: Command) -> None:
        """Its dependencies ended ok: into the scheduler's queue (the command that ended is followed by a
        scheduling pass), or cancelled if the run is being stopped."""
        if self.tree.cancelled or self.halt.reason:
            self.finish(command, Result(command, Status.CANCELLED, error=self.halt.reason))
        else:
            self.scheduler.release(command)

    def cancel_queued(self) -> None:
        for command in self.scheduler.drain():
            self.finish(command, Result(command, Status.CANCELLED, error=self.halt.reason))
        self.observers.flush()

    # -- one command -----------------------------------------------------------------------------------

    def start(self, command: Command, seat: Seat, lease: Lease | None) -> None:
        """The scheduler's start: take the slots, assign, and send the request -- in this step, so that a
        freed slot is refilled without a task switch. Its group settles its end; a timeout has a task."""
        self.global_slots.acquire_on_behalf_of_nowait(command)
        seat.load.active += 1  # (its slot: the scheduler asked can_take_now)
        self.started += 1
        command.cores = lease.cores if lease is not None else ()
        command.numa_node = lease.numa_node if lease is not None else command.requested_numa_node
        command.gpus = lease.gpus if lease is not None else ()
        command.work_dir = seat.work_dir_of(command.work_relpath)
        command.host = seat.host
        command.runner = seat.handle  # last: assigned() turns true only once everything above is set
        argv = seat.argv_for(command, lease)
        self.observe("started", command, argv=argv)
        launched: Launched | Exception
        try:
            launched = seat.launch(self.run_id, command, lease, argv)
        except Exception as exc:  # (its result, from a task of its own: _not_launched)
            launched = exc
        assert command.group is not None and command.group._nursery is not None
        if isinstance(launched, Exception):
            command.group._nursery.start_soon(self._not_launched, command, seat, lease, launched)
            return
        command.group._done.watch(launched.job, (command, seat, lease, launched))  # (the group settles its end)
        if command.timeout:
            command.group._nursery.start_soon(self._deadline, command, seat, lease, launched)

    async def _not_launched(self, command: Command, seat: Seat, lease: Lease | None, error: Exception) -> None:
        """A launch that raised: its error is the command's result (from a task: a pass must not end one)."""
        self._end(command, seat, lease, Result(command, Status.ERROR, error=f"{type(error).__name__}: {error}"))

    async def _deadline(self, command: Command, seat: Seat, lease: Lease | None, launched: Launched) -> None:
        """A command's timeout. One that ends in time is settled as every other (``_engine._ends``), and one that
        is running when the run is cancelled is stopped with the others; one still running when its time is up
        is this task's: taken from its group's ends and stopped (TERM, grace, KILL, shielded), its result the
        launcher's word -- "timeout", or how it ended if it ended by itself just as time ran out."""
        job = launched.job
        with trio.move_on_after(command.timeout):
            await job.ended.wait()
        if job.done or not command.group._done.unwatch(job):
            return
        result: Result | None = None
        try:
            await seat.stop(launched, KILL_GRACE, "timeout")
            result = seat.result_of(command, launched)
        except Exception as exc:  # a bug in a transport must end this command, not the whole run
            result = Result(command, Status.ERROR, error=f"{type(exc).__name__}: {exc}")
        finally:
            self._end(command, seat, lease, result or Result(command, Status.CANCELLED))

    def _ended(self, command: Command, seat: Seat, lease: Lease | None, launched: Launched,
               scheduled: bool = True) -> None:
        """A command its group holds ended: its result, from what its launcher said."""
        try:
            result = seat.result_of(command, launched)
        except Exception as exc:  # a bug in a transport must end this command, not the whole run
            result = Result(command, Status.ERROR, error=f"{type(exc).__name__}: {exc}")
        self._end(command, seat, lease, result, scheduled)

    def _end(self, command: Command, seat: Seat, lease: Lease | None, result: Result, scheduled: bool = True
             ) -> None:
        """A launched command's end: its slots given back, then retried or finished, and the next started
        (``scheduled``: by a pass here, else by the caller's, once for the ends it settles together)."""
        if lease is not None:
            seat.resources.release(lease)
        self.global_slots.release_on_behalf_of(command)
        seat.load.active -= 1
        self.attempts.note(seat, command, result)
        if self.attempts.retried(command, result):
            result._detach()  # (its own copy of what the retry changes in the handle)
            command.attempts = list(result.attempts)
            self.observe("retrying", command, result=result)
            command.attempt += 1
            self.scheduler.requeue(command)
        else:
            self.finish(command, result, ran=True)
            command._settle(seat.settled)  # nothing of the engine's is kept per finished command
        if self.halt.reason and seat.batch is not None and seat.load.active == 0 and not seat.closing:
            self.tree.start_service(seat.close)  # halted: a batch node is given back once it is idle
        if scheduled:
            self.schedule()
            self._after_pass(seat)

    def _after_pass(self, seat: Seat) -> None:
        if seat.batch is not None and seat.load.active == 0 and self.scheduler.queued:
            self._idle(seat)

    def _idle(self, seat: Seat) -> None:
        """A batch allocation none of whose nodes runs anything while commands that could go there are
        queued: it hears their timeouts (whether to end it for a new one is its own policy)."""
        if not seat.alive or seat.batch is None or any(s.load.active for s in self.seats if s.batch is seat.batch):
            return
        seat.batch.idle(command.timeout for queue in self.scheduler.queues.values()  # (a class's commands
                        if queue and seat in queue[0].candidates for command in queue)  # share their candidates)

    def finish(self, command: Command, result: Result, ran: bool = False) -> None:
        """Its result stored, whoever waits woken. ``ran``: this result is of an attempt that ran (its
        ``attempts`` are the handle's earlier ones and itself), not of one that never started."""
        result.run_id = result.run_id or self.run_id
        if not ran and not result.resumed:
            result.attempts = list(command.attempts or ())
        command.result = result
        self.unfinished -= 1
        if self.halt.count(command, result):
            self._halt()
        group = command.group
        if group is not None:
            group.remaining -= 1
            if group.remaining == 0 and group._done is not None:
                group._done.set()
        self.observe("finished", command, result=result)
        self.completion.finished(command, self.unfinished == 0)
        if command.dependents is not None:
            self.dependencies.ended(command)

    def _halt(self) -> None:
        for command in self.scheduler.drain():
            self.finish(command, Result(command, Status.CANCELLED, error=self.halt.reason))
        if self.halt.mode == "now":
            self.tree.stop_running()


def gone_because(seat: Seat) -> str:
    return seat.quarantined or seat.relaunch.waiting or (seat.client.gone if seat.client else None) \
        or "not connected"
