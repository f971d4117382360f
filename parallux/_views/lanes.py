"""The timeline's lanes: which of its runner's slots (or cores) each attempt held, rebuilt from the log; and
the GPUs of each runner whose commands leased some, a lane each."""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass
from operator import attrgetter

from .records import Attempt, Run


@dataclass
class Lanes:
    """A runner's lanes on the timeline: its cores (with a core pool) or its slots 0..n-1."""

    kind: str  # "core" or "slot"
    values: list[int]


def assign_slots(run: Run, now: float | None = None) -> dict[str, Lanes]:
    """Give every attempt a lane of its runner (``attempt.slot``): a core where the runner has a core pool
    (an attempt on several cores is on the lane of its lowest), else a slot.

    The log does not say which of a runner's slots a command held, so slots are rebuilt from the intervals:
    greedy interval partitioning (in order of start, the lowest lane free at that instant) needs exactly as
    many lanes as commands ran at once at the busiest moment, and no two attempts of a lane overlap.
    """
    end_of_running = now if now is not None else (run.end or time.time())
    by_runner: dict[str, list[Attempt]] = {}
    for attempt in run.attempts():
        if attempt.start is not None:
            by_runner.setdefault(attempt.runner or "?", []).append(attempt)
    lanes: dict[str, Lanes] = {}
    for name in [*run.runners, *by_runner]:
        if name in lanes:
            continue
        attempts = by_runner.get(name, [])
        pool = (run.runners.get(name) or {}).get("core_pool")
        hosts = sorted({a.host or "" for a in attempts})
        if len(hosts) > 1:  # a Slurm runner's nodes: each its own block of slots (its cores are its own too)
            lanes[name] = Lanes("slot", list(range(_pack_per_host(attempts, hosts, end_of_running))))
        elif pool or any(a.cores for a in attempts):
            used = {core for a in attempts for core in a.cores}
            lanes[name] = Lanes("core", sorted(set(pool or ()) | used))
            for attempt in attempts:
                attempt.slot = min(attempt.cores) if attempt.cores else -1
        else:
            lanes[name] = Lanes("slot", list(range(_pack(attempts, end_of_running))))
    return lanes


def gpu_lanes(run: Run) -> dict[str, list[int]]:
    """Each runner whose commands leased GPUs: those GPUs (an attempt is drawn on the lane of each of its)."""
    used: dict[str, set[int]] = {}
    for attempt in run.attempts():
        if attempt.gpus and attempt.start is not None:
            used.setdefault(attempt.runner or "?", set()).update(attempt.gpus)
    return {name: sorted(gpus) for name, gpus in used.items()}


def _pack_per_host(attempts: list[Attempt], hosts: list[str], end_of_running: float) -> int:
    """Slots packed per host, the hosts' blocks one after another (in host order); the lanes in all."""
    base = 0
    for host in hosts:
        mine = [a for a in attempts if (a.host or "") == host]
        count = _pack(mine, end_of_running)
        for attempt in mine:
            attempt.slot += base
        base += count
    return base


def _pack(attempts: list[Attempt], end_of_running: float) -> int:
    attempts.sort(key=attrgetter("start"))
    busy: list[tuple[float, int]] = []  # (end, slot)
    free: list[int] = []
    count = 0
    push, pop = heapq.heappush, heapq.heappop
    for attempt in attempts:
        start = attempt.start
        while busy and busy[0][0] <= start:  # type: ignore[operator]
            push(free, pop(busy)[1])
        if free:
            slot = pop(free)
        else:
            slot, count = count, count + 1
        attempt.slot = slot
        end = attempt.end if attempt.end is not None else end_of_running
        push(busy, (end if end > start else start, slot))  # type: ignore[operator]
    return count
