"""One Slurm allocation a runner's launchers live in, and the next one when it ends.

Shared by the transports of a runner's nodes: the first node to need the allocation polls ``squeue``
until it runs (the others wait for that poll, so a pending job costs one query per poll whatever its node
count); when it has ended (time limit, node failure, ``scancel`` from outside) and work remains, the first
node to notice submits the next one. The allocation parallux submitted is cancelled once the last of its
launchers has ended at the end of the run; one parallux runs inside (``SLURM_JOB_ID``) is never touched.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import trio

from . import _commands as slurm
from ._commands import Request
from ._reasons import never_starts
from ._shell import Shell

POLL_FIRST = 0.25   # seconds between the first polls of a pending allocation ...
POLL_MAX = 5.0      # ... growing to this
DEMAND_POLL = 1.0   # seconds between looks for new work while no allocation is held
RELAUNCHES = 3      # launchers in a row that end on a node of a running allocation before it is given up
STATE_TRIES = 8     # squeue failures in a row before the job counts as gone
CLOSE_WAIT = 15.0   # seconds the end of the run waits for the launchers to end before it cancels the job


class Closed(Exception):
    """The run is ending, or no further allocation will come: no launcher is to be started."""


class Allocation:
    def __init__(self, request: Request, shell: Shell, *, job_id: str, own: bool, nodes: list[str] | None = None,
                 time_limit: float | None = None) -> None:
        self.request = request
        self.shell = shell                # where Slurm's commands run: here, or a login host (login=)
        self.job_id = job_id
        self.own = own                    # submitted by parallux (cancelled at the end, renewed when it ends)
        self.node_names = nodes           # once running
        self.time_limit = time_limit      # seconds, if limited
        self.ends_at: float | None = None  # time.monotonic() when its time is up
        self.generation = 0               # which allocation of this runner: +1 at each renewal
        self.state = "RUNNING" if nodes is not None else "SUBMITTED"
        self.reason: str | None = None
        self.failure: str | None = None   # why no further allocation will come
        self.ended_how: str | None = None  # how the last one ended, for the results it cut short
        self.closing = False
        self.notify: Callable[[str], None] = lambda text: None  # a line for the progress display
        self.demand: Callable[[], bool] = lambda: True          # whether work remains (a renewal is worth it)
        self._lock = trio.Lock()
        self._open: set[int] = set()      # nodes whose launcher is up
        self._relaunches: dict[int, int] = {}
        self._cancelled = False
        self._shown: tuple[str, str | None] | None = None  # the pending state the display was told of
        self._reason_since: tuple[str, float] | None = None  # the pending reason, and since when it holds
        self.wanted = 0                   # callers waiting for a launcher (a file read): a renewal is worth it
        self._watchers: list[Callable[[], None]] = []  # its nodes' seats: they publish what they say of it
        self._told: tuple[Any, ...] = (job_id, self.waiting, nodes)

    # -- what the display and the scheduler read ------------------------------------------------------------

    @property
    def expected(self) -> bool:
        return not self.closing and self.failure is None

    @property
    def waiting(self) -> str:
        if self.failure is not None:
            return self.failure
        if self.state == "RUNNING":
            return f"job {self.job_id} starting its launchers"
        if self.state == "SUBMITTED":
            return f"job {self.job_id} submitted"
        return f"job {self.job_id} {self.state.lower()}" + (f" ({self.reason})" if self.reason else "")

    def time_left(self) -> float | None:
        return None if self.ends_at is None else self.ends_at - time.monotonic()

    def watch(self, changed: Callable[[], None]) -> None:
        self._watchers.append(changed)

    def _changed(self) -> None:
        """Its seats hear of a new job, new nodes, or a new state while they wait (engine thread)."""
        now = (self.job_id, self.waiting, self.node_names)
        if now != self._told:
            self._told = now
            for changed in self._watchers:
                changed()

    # -- what the seats of its nodes ask of it (``_lifeline.Batch``) ------------------------------------------

    def cpus(self, facts: dict[str, Any]) -> int:
        """The CPUs it has on a node (the launcher's step holds all of them: ``--whole``)."""
        return int(facts.get("usable_cores") or facts.get("logical_cores") or 1)

    def want(self, delta: int) -> None:
        self.wanted += delta

    def idle(self, timeouts: Iterable[float | None]) -> None:
        """None of its nodes runs anything, while these commands wait for one: if every one of them waits only
        because its timeout exceeds the time left, it would idle until its end -- ask for the next one now."""
        left = self.time_left()
        if left is None:
            return
        wanted = False
        for timeout in timeouts:
            if not (timeout and timeout > left):
                return  # one would fit the time left: it waits for something else
            wanted = True
        if wanted:
            self.too_short()

    def start_clock(self, left: float | None) -> None:
        """It runs, with ``left`` seconds to go (None: no limit)."""
        self.ends_at = None if left is None else time.monotonic() + left

    # -- one node's launcher ---------------------------------------------------------------------------------

    async def node(self, index: int, after: int | None) -> tuple[int, str]:
        """(generation, node name) for node ``index``'s next launcher, once an allocation runs: the current
        one, or -- if the launcher of generation ``after`` ended because its allocation did -- a new one."""
        async with self._lock:
            if self.closing or self.failure is not None:
                raise Closed()
            try:
                if after == self.generation:  # its launcher on this allocation ended: is the allocation over?
                    await self._after_launcher_ended(index)
                await self._wait_running()
            finally:
                self._changed()
            assert self.node_names is not None
            if index >= len(self.node_names):
                raise Closed()
            self._open.add(index)
            return self.generation, self.node_names[index]

    async def _after_launcher_ended(self, index: int) -> None:
        state = await self._state()
        if self.closing:
            raise Closed()
        if not state.ended:  # (running, or anything else it may still become: pending, suspended, ...)
            self._relaunches[index] = self._relaunches.get(index, 0) + 1
            if self._relaunches[index] > RELAUNCHES:
                raise Closed()  # this node's launcher keeps ending: the node is lost to the run
            return
        self.ended_how = f"the Slurm allocation ended (job {self.job_id}: {state.state.lower()})"
        self.node_names = None
        self.notify(f"slurm runner {self.request.runner!r}: job {self.job_id} ended ({state.state.lower()})")
        self._changed()
        if not self.own:
            self.failure = f"the allocation parallux runs in (job {self.job_id}) has ended"
            raise Closed()
        while not (self.demand() or self.wanted):  # nothing to run: a new allocation would hold nodes for
            if self.closing:                          # nothing
                raise Closed()
            await trio.sleep(DEMAND_POLL)
        await self.cancel()  # (whatever is left of the last one)
        try:
            job_id = await slurm.submit_again(self.shell, self.request)
        except Exception as exc:
            self.failure = f"cannot request a new allocation: {exc}"
            raise Closed() from None
        self.job_id, self._cancelled = job_id, False
        if self.closing:  # the run ended while sbatch answered
            await self.cancel()
            raise Closed()
        self.generation += 1
        self.state, self.reason, self.node_names, self.ends_at = "PENDING", None, None, None
        self._changed()
        self._relaunches.clear()
        self.notify(f"slurm runner {self.request.runner!r}: new allocation requested (job {self.job_id})")

    async def _wait_running(self) -> None:
        pause = POLL_FIRST
        while self.node_names is None:
            state = await self._state()
            if self.closing:
                raise Closed()
            if state.ended:  # before it ran: cancelled while pending (scancel means stop), or refused later
                self.state = state.state
                self.failure = (f"job {self.job_id} ended before it ran "
                                f"({'cancelled' if state.state == 'GONE' else state.state.lower()})")
                self.notify(f"slurm runner {self.request.runner!r}: {self.failure}; no new allocation")
                raise Closed()
            self.state, self.reason = state.state, state.reason
            self._changed()
            if state.state == "PENDING" and state.reason:
                await self._give_up_if_hopeless(state.reason)
            if state.state == "PENDING" and (state.state, state.reason) != self._shown:
                self._shown = (state.state, state.reason)
                self.notify(f"slurm runner {self.request.runner!r}: {self.waiting}")
            if state.state == "RUNNING" and state.nodelist:
                self.node_names = await slurm.hostnames(self.shell, state.nodelist)
                self.start_clock(state.time_left)
                self.notify(f"slurm runner {self.request.runner!r}: job {self.job_id} running on "
                            f"{state.nodelist}")
                return
            with trio.move_on_after(pause):
                while not self.closing:
                    await trio.sleep(0.05)
            if self.closing:
                raise Closed()
            pause = min(pause * 1.5, POLL_MAX)

    async def _give_up_if_hopeless(self, reason: str) -> None:
        """A pending reason that can never clear (``_reasons``) fails the runner now, and the job goes."""
        if self._reason_since is None or self._reason_since[0] != reason:
            self._reason_since = (reason, trio.current_time())
        why = await never_starts(self.shell, self.job_id, reason, trio.current_time() - self._reason_since[1])
        if why is None:
            return
        self.failure = f"job {self.job_id} can never start: {why}"
        self.notify(f"slurm runner {self.request.runner!r}: {self.failure}; it is cancelled")
        await self.cancel()
        raise Closed()

    async def _state(self) -> slurm.JobState:
        """The job's state; a failed query (the controller busy, a fork failing) is asked again, not taken
        for the job's end."""
        pause = POLL_FIRST
        for _ in range(STATE_TRIES):
            state = await slurm.job_state(self.shell, self.job_id)
            if state.state != "UNKNOWN":
                return state
            await trio.sleep(pause)
            pause = min(pause * 2, POLL_MAX)
        return state

    async def left(self, index: int) -> None:
        """Node ``index``'s launcher has ended; at the end of the run, the last one out cancels the job."""
        self._open.discard(index)
        if self.closing and not self._open:
            await self.cancel()

    async def close(self) -> None:
        """The run ends: no launcher is started any more; with none up, the job is cancelled now, else once
        the last one has ended -- or after CLOSE_WAIT anyway (a frozen node: scancel ends its step)."""
        self.closing = True
        if not self._open:
            await self.cancel()
            return
        with trio.move_on_after(CLOSE_WAIT):
            while self._open:
                await trio.sleep(0.05)
        await self.cancel()

    def too_short(self) -> None:
        """Too little time is left for what waits: cancel it now; its nodes' seats then ask for the next."""
        if self.own and not self._cancelled and not self.closing:
            self.notify(f"slurm runner {self.request.runner!r}: job {self.job_id} has too little time left for "
                        "the queued commands' timeouts; asking for a new allocation")
            self._cancelled = True
            self.shell.run_soon(["scancel", self.job_id])  # (the engine thread: never waits for it)

    def cancel_now(self) -> None:
        """Cancel the job from the main thread (goal.slurm() failing after sbatch)."""
        if self.own and not self._cancelled:
            self._cancelled = True
            slurm.cancel_now(self.shell, self.job_id)

    async def cancel(self) -> None:
        if self.own and not self._cancelled:
            self._cancelled = True
            with trio.CancelScope(shield=True):
                await slurm.cancel(self.shell, self.job_id)
