"""The scheduler: which queued command starts next, and where.

Commands wait in per-class FIFO queues, a class being everything that decides where a command may run
(candidate runners, threads, NUMA node, exact cores). A scheduling pass walks the class heads in submission
order and starts each head that fits now. A class whose head does not fit is skipped for the rest of the pass
-- every later command of that class would not fit either -- which is what makes the scheduler

* work-conserving: a command that cannot start never keeps a later command of another class from starting
  where that one fits, and no slot stays idle while a queued command could use it;
* FIFO among commands that fit, and cheap: a pass costs O(classes), not O(queued commands), so 100,000
  queued commands cost no more per start than 100.

Bypassing could starve a big command (4 cores, 4 GPUs, 8 GB) behind a stream of small ones (1 core, 1 GPU,
1 GB). So each class head counts the later commands that started on one of its runners -- or leased what its
runners could lease, on another runner of the same machine -- while it waited; once that count reaches
``bypass_limit``, the head *reserves* what it needs of its runners' machines (``_allocator``: cores, GPUs,
memory): for the rest of each pass, later commands may no longer lease those there, so what frees up
accumulates until the big command fits. Slots are never reserved; nothing is held that the waiting command
does not need.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from typing import Any, Callable, Hashable, Iterable, Protocol

from ._allocator import ResourceAllocator
from ._errors import SchedulerPolicyError
from ._resources import Lease

BYPASS_LIMIT = 16


class Place(Protocol):
    """What the scheduler needs of a place commands run (the engine's ``Seat``; a test's double)."""

    name: str
    resources: ResourceAllocator  # what its commands lease besides a slot (cores, GPUs, memory)
    handle: Any  # what a setScheduler function is offered and may return (the config's Runner)

    @property
    def accepting(self) -> bool: ...  # it may still be given commands (connected, not quarantined)

    def can_take_now(self, command: Queued) -> bool: ...

    def lease_for(self, command: Queued) -> Lease | None: ...


class Queued(Protocol):
    """What the scheduler reads of a queued command (``_handles.Command``)."""

    seq: int
    candidates: tuple[Place, ...]  # the places that could ever run it
    pin: Place | None
    avoid: Place | None           # where its last attempt could not be executed
    threads: int
    requested_numa_node: int | None
    requested_cores: tuple[int, ...] | None
    requested_gpus: int | tuple[int, ...] | None
    memory: int | None


Reserved = list[tuple[ResourceAllocator, int]]  # (an allocator a starving head reserved, what it needs there)
StartFn = Callable[[Any, Any, "Lease | None"], None]  # (command, place, lease)
PolicyFn = Callable[[list[Any], int], Any]


def class_key(command: Queued) -> Hashable:
    """Commands with equal keys have the same placement constraints."""
    return (command.candidates, command.threads, command.requested_numa_node, command.requested_cores,
            command.requested_gpus, command.memory)


def seq_of(command: Queued) -> int:
    return command.seq


class Scheduler:
    """Per-class FIFO queues and the pass that starts whatever fits. Runs in the engine thread only."""

    def __init__(self, global_slots: Any, start: StartFn, bypass_limit: int = BYPASS_LIMIT) -> None:
        self.global_slots = global_slots      # a trio.CapacityLimiter (or anything with available_tokens)
        self.start = start
        self.bypass_limit = bypass_limit
        self.policy: PolicyFn | None = None
        self.queues: dict[Hashable, deque[Any]] = {}
        self.bypassed: dict[int, int] = {}     # seq of a waiting class head -> later starts on its runners
        self.queued = 0
        self.declined = False  # the policy said "wait" in the last pass: ask it again later

    def submit(self, commands: Iterable[Queued]) -> None:
        for command in commands:
            queue = self.queues.get(key := class_key(command))
            if queue is None:
                queue = self.queues[key] = deque()
            queue.append(command)
            self.queued += 1

    def requeue(self, command: Queued) -> None:
        """Put a command back at the head of its class (a retry keeps its place in line)."""
        queue = self.queues.get(key := class_key(command))
        if queue is None:
            queue = self.queues[key] = deque()
        queue.appendleft(command)
        self.queued += 1

    def release(self, command: Queued) -> None:
        """Queue a command that waited for its dependencies (``after=``) at its place in submission order:
        before the commands of its class submitted after it."""
        queue = self.queues.get(key := class_key(command))
        if queue is None:
            queue = self.queues[key] = deque()
        bisect.insort(queue, command, key=seq_of)
        self.queued += 1

    def drain(self) -> list[Queued]:
        """Remove and return every queued command (when the run is cancelled or halted)."""
        drained = [c for queue in self.queues.values() for c in queue]
        drained.sort(key=lambda c: c.seq)
        self.queues.clear()
        self.bypassed.clear()
        self.queued = 0
        return drained

    # -- the pass ---------------------------------------------------------------------------------------------

    def schedule(self) -> list[Queued]:
        """Start every queued command that fits now, oldest first; return commands that can never run."""
        self.declined = False
        if not self.queued:
            return []
        heads = [(q[0].seq, key) for key, q in self.queues.items() if q]
        heapq.heapify(heads)
        waiting: list[Queued] = []        # heads that did not fit in this pass
        reserved: Reserved = []  # what a starving head reserved: its runners' allocators, what it needs there
        unrunnable: list[Queued] = []
        while heads and self.global_slots.available_tokens >= 1:
            _, key = heapq.heappop(heads)
            queue = self.queues[key]
            command = queue[0]
            placement = self._place(command, reserved)
            if placement is None:
                if not any(r.accepting for r in command.candidates):
                    unrunnable.extend(queue)
                    self._forget(key, len(queue))
                    continue
                waiting.append(command)
                if self.bypassed.get(command.seq, 0) >= self.bypass_limit:
                    reserved.extend((r.resources, needs) for r in command.candidates
                                    if (needs := r.resources.needs(command)))
                continue
            runner, lease = placement
            queue.popleft()
            self.queued -= 1
            self.bypassed.pop(command.seq, None)
            if waiting:
                self._count_bypass(waiting, runner, command)
            self.start(command, runner, lease)
            if queue:
                heapq.heappush(heads, (queue[0].seq, key))
            else:
                del self.queues[key]
        return unrunnable

    def _forget(self, key: Hashable, count: int) -> None:
        del self.queues[key]
        self.queued -= count

    def _count_bypass(self, waiting: list[Queued], runner: Place, command: Queued) -> None:
        took = runner.resources.needs(command)
        for older in waiting:
            if runner in older.candidates or took and _competes(runner, took, older):
                self.bypassed[older.seq] = self.bypassed.get(older.seq, 0) + 1

    def _place(self, command: Queued, reserved: Reserved) -> tuple[Place, Lease | None] | None:
        fits = [r for r in command.candidates
                if r.can_take_now(command) and not (reserved and _held_back(r, command, reserved))]
        if not fits:
            return None
        runner = self._choose(fits, command)
        if runner is None:
            return None
        lease = runner.lease_for(command)
        if lease is None and runner.resources.needs(command):
            return None
        return runner, lease

    def _choose(self, fits: list[Place], command: Queued) -> Place | None:
        if self.policy is None or command.pin is not None:
            # a retry of a command that could not execute on a runner goes elsewhere when it can
            avoid = command.avoid
            return fits[0] if avoid is None else next((r for r in fits if r is not avoid), fits[0])
        try:
            # (a Slurm runner's nodes are several places of one handle: the function sees it once)
            choice = self.policy(list(dict.fromkeys(r.handle for r in fits)), command.threads)
            if choice is None:
                self.declined = True
        except Exception as exc:
            raise SchedulerPolicyError(f"the scheduler function set by setScheduler() raised "
                                       f"{type(exc).__name__}: {exc}") from exc
        if choice is None:
            return None
        for runner in fits:
            if choice is runner.handle or choice == runner.name:
                return runner
        raise SchedulerPolicyError(f"the scheduler function returned {choice!r}, which is not one of the "
                                   f"runners it was offered: {[r.name for r in fits]}")


def _competes(runner: Place, took: int, older: Queued) -> bool:
    """Whether a lease of ``took`` on ``runner`` may take what ``older`` would lease on one of its places."""
    return any(runner.resources.competes(place.resources, took & place.resources.needs(older))
               for place in older.candidates)


def _held_back(runner: Place, command: Queued, reserved: Reserved) -> bool:
    """Whether leasing ``command`` on ``runner`` would take what a starving head reserved."""
    needs = runner.resources.needs(command)
    return bool(needs) and any(runner.resources.competes(other, needs & kinds) for other, kinds in reserved)
