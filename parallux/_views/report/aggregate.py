"""The report of a run too big to draw bar by bar: its lanes aggregated over time, a sample of its bars.

Up to ``detail`` attempts (``parallux report --detail``, 100,000 by default) the report embeds every command and
attempt. Beyond, a page would carry 300 bytes a command (300 MB for a million) and draw a million bars no
screen can show apart, so the report is made from the log's columns (``scan.Scan``) instead:

* every lane's occupancy over time, in ``BINS`` intervals: the fraction of each interval its attempts held
  it, and the worst status among them (``aggregate.lanes``) -- every attempt counts;
* the running and queued commands over time and the histogram of durations, computed here over every
  attempt, as the page computes them for a smaller run;
* a sample of the commands, each read in full with all its attempts: every command that did not end ok (up
  to half the sample), the slowest, and then commands evenly spread over the run -- ``detail / 2`` of them;
* the exact counts (the run's summary is of every command), and how many of each the page holds.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np

from ..scan import Scan

BINS = 1000           # intervals of a lane's occupancy
LOAD_POINTS = 1500    # points of the running/queued chart (as the page takes for a smaller run)
DURATION_BINS = 40
SLOWEST = 25          # the slowest commands the page lists
SEVERITY = ("ok", "cancelled", "queued", "running", "timeout", "error", "oom", "failed")  # the page's draw order


def sampled_seqs(scanned: Scan, detail: int) -> list[int]:
    """The commands the page holds in full: those that did not end ok (up to half), the slowest, then
    commands evenly spread over the run, ``detail / 2`` in all."""
    budget = max(1, detail // 2)
    failed = np.flatnonzero(scanned.failed())[:budget // 2]
    durations = scanned.durations()
    timed = np.flatnonzero(~np.isnan(durations) & ~scanned.resumed)
    slowest = timed[np.argsort(-durations[timed], kind="stable")[:SLOWEST]]
    chosen = np.union1d(failed, slowest)
    rest = np.setdiff1d(np.arange(len(scanned.seq)), chosen)
    left = min(budget - len(chosen), len(rest))
    if left > 0:
        chosen = np.union1d(chosen, rest[np.linspace(0, len(rest) - 1, num=left).astype(np.int64)])
    return scanned.seq[chosen].tolist()


def lanes_of(scanned: Scan, now: float) -> tuple[dict[str, tuple[str, list[int]]], np.ndarray]:
    """Every runner's lanes (kind, values) and each attempt's lane (as ``lanes.assign_slots`` gives them: a
    core where the runner has a core pool, an attempt on several cores on its lowest; else slots packed
    greedily, per host for a runner on several)."""
    lane = np.full(len(scanned.attempt_seq), -1, dtype=np.int64)
    drawn = scanned.listed & ~np.isnan(scanned.start)
    result: dict[str, tuple[str, list[int]]] = {}
    names = [*scanned.runners, *[n or "?" for n in scanned.runner_names]]
    for name in dict.fromkeys(names):
        codes = [i for i, n in enumerate(scanned.runner_names) if (n or "?") == name]
        mine = np.flatnonzero(drawn & np.isin(scanned.attempt_runner, codes))
        pool = (scanned.runners.get(name) or {}).get("core_pool")
        cored = [a for a in mine.tolist() if a in scanned.cores]
        hosts = np.unique(scanned.attempt_host[mine])
        if len(hosts) > 1:
            base = 0
            for host in hosts.tolist():
                here = mine[scanned.attempt_host[mine] == host]
                count = _pack(scanned, here, now, lane)
                lane[here] += base
                base += count
            result[name] = ("slot", list(range(base)))
        elif pool or cored:
            used = {core for a in cored for core in scanned.cores[a]}
            lane[mine] = -1
            for a in cored:
                lane[a] = min(scanned.cores[a])
            result[name] = ("core", sorted(set(pool or ()) | used))
        else:
            result[name] = ("slot", list(range(_pack(scanned, mine, now, lane))))
    return result, lane


def _pack(scanned: Scan, attempts: np.ndarray, now: float, lane: np.ndarray) -> int:
    """Greedy interval partitioning (``lanes._pack``): in order of start, the lowest lane free then."""
    order = attempts[np.argsort(scanned.start[attempts], kind="stable")]
    starts = scanned.start[order].tolist()
    ends = np.where(np.isnan(scanned.end[order]), now, scanned.end[order]).tolist()
    busy: list[tuple[float, int]] = []
    free: list[int] = []
    count = 0
    slots = []
    push, pop = heapq.heappush, heapq.heappop
    for start, end in zip(starts, ends):
        while busy and busy[0][0] <= start:
            push(free, pop(busy)[1])
        if free:
            slot = pop(free)
        else:
            slot, count = count, count + 1
        slots.append(slot)
        push(busy, (end if end > start else start, slot))
    lane[order] = slots
    return count


def aggregates(scanned: Scan, lanes: dict[str, tuple[str, list[int]]], lane: np.ndarray, origin: float,
               now: float) -> dict[str, Any]:
    """What the page draws of every attempt: lanes' occupancy, running and queued over time, durations."""
    drawn = np.flatnonzero(scanned.listed & ~np.isnan(scanned.start))
    start = scanned.start[drawn] - origin
    end = np.where(np.isnan(scanned.end[drawn]), now, scanned.end[drawn]) - origin
    t0 = min(0.0, float(start.min())) if len(start) else 0.0
    t1 = max(now - origin, float(end.max()) if len(end) else 0.0, t0 + 1e-3)
    return {"attempts": int(len(drawn)), "commands": int(len(scanned.seq)), "t0": t0, "t1": t1,
            "lanes": _occupancy(scanned, lanes, lane, drawn, start, end, t0, t1),
            "load": _load(scanned, drawn, start, end, origin, now, t0, t1),
            "durations": _durations(scanned)}


def _occupancy(scanned: Scan, lanes: dict[str, tuple[str, list[int]]], lane: np.ndarray, drawn: np.ndarray,
               start: np.ndarray, end: np.ndarray, t0: float, t1: float) -> list[dict[str, Any]]:
    edges = np.linspace(t0, t1, BINS + 1)
    width = edges[1] - edges[0]
    severity = np.array([SEVERITY.index(s) if s in SEVERITY else len(SEVERITY) - 1 for s in scanned.status_names])
    worst_of = severity[scanned.attempt_status[drawn]]
    runner_of = np.array([n or "?" for n in scanned.runner_names], dtype=object)[scanned.attempt_runner[drawn]]
    out = []
    for name, (kind, values) in lanes.items():
        mine = runner_of == name
        for value in values:
            here = mine & (lane[drawn] == value)
            busy = _busy(start[here], end[here], edges) / width
            worst = np.where(busy > 0, 0, -1)  # ("ok" where the lane was held, unless something worse was)
            bad = here & (worst_of > 0)
            first = np.clip(((start[bad] - t0) / width).astype(np.int64), 0, BINS - 1)
            last = np.clip(((end[bad] - t0) / width).astype(np.int64), 0, BINS - 1)
            for b0, b1, level in zip(first.tolist(), last.tolist(), worst_of[bad].tolist()):
                worst[b0:b1 + 1] = np.maximum(worst[b0:b1 + 1], level)
            out.append({"runner": name, "lane": value, "busy": np.round(np.minimum(busy, 1) * 100).astype(int).tolist(),
                        "worst": [SEVERITY[w] if w >= 0 else None for w in worst.tolist()]})
    return out


def _busy(start: np.ndarray, end: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Per interval between edges, the time the attempts held their lane: the integral of the step function
    (+1 at a start, -1 at an end) between the edges."""
    if not len(start):
        return np.zeros(len(edges) - 1)
    times = np.concatenate([start, end])
    steps = np.concatenate([np.ones(len(start)), -np.ones(len(end))])
    order = np.argsort(times, kind="stable")
    times, level = times[order], np.cumsum(steps[order])
    held = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(times))])  # time held up to each change
    return np.diff(np.interp(edges, times, held, left=0.0, right=held[-1]))


def _load(scanned: Scan, drawn: np.ndarray, start: np.ndarray, end: np.ndarray, origin: float, now: float,
          t0: float, t1: float) -> dict[str, Any]:
    """Running per runner and queued, each the highest level within each interval of a grid (as the page
    samples them), over every attempt."""
    grid = np.linspace(t0, t1, LOAD_POINTS)
    runner_of = np.array([n or "?" for n in scanned.runner_names], dtype=object)[scanned.attempt_runner[drawn]]
    running = {}
    for name in dict.fromkeys(runner_of.tolist()):
        mine = runner_of == name
        running[name] = _peaks(np.concatenate([start[mine], end[mine]]),
                               np.concatenate([np.ones(mine.sum()), -np.ones(mine.sum())]), grid)
    since, until = _queued_intervals(scanned, now)
    queued = _peaks(np.concatenate([since, until]) - origin,
                    np.concatenate([np.ones(len(since)), -np.ones(len(until))]), grid)
    return {"grid": grid.tolist(), "running": running, "queued": queued}


def _queued_intervals(scanned: Scan, now: float) -> tuple[np.ndarray, np.ndarray]:
    """When each command waited: from its queuing (or its last attempt's end) to its next attempt's start;
    to now while it is queued; to its end if it ended without running (the page's rule)."""
    listed = np.flatnonzero(scanned.listed)
    order = listed[np.argsort(scanned.command[listed], kind="stable")]
    command = scanned.command[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = command[1:] != command[:-1]
    ends = np.where(np.isnan(scanned.end[order]), now, scanned.end[order])
    since = np.where(first, scanned.queued[command], np.concatenate([[np.nan], ends[:-1]]))
    until = np.maximum(since, scanned.start[order])
    intervals = [(since, until)]
    last_end = np.full(len(scanned.seq), np.nan)
    last_end[command] = ends  # (the last of each command's stays)
    has = np.zeros(len(scanned.seq), dtype=bool)
    has[command] = True
    queued = scanned.status == scanned.status_names.index("queued")
    waiting_since = np.where(has, last_end, scanned.queued)
    intervals.append((waiting_since[queued], np.full(queued.sum(), now)))
    ended = ~has & ~queued & ~np.isnan(scanned.finished_at)
    intervals.append((scanned.queued[ended], np.maximum(scanned.queued[ended], scanned.finished_at[ended])))
    since = np.concatenate([s for s, _ in intervals])
    until = np.concatenate([u for _, u in intervals])
    keep = ~np.isnan(since) & ~np.isnan(until)
    return since[keep], until[keep]


def _peaks(times: np.ndarray, steps: np.ndarray, grid: np.ndarray) -> list[int]:
    """The highest level of the step function within each grid interval (the level on entering it, or any it
    reaches inside)."""
    if not len(times):
        return [0] * len(grid)
    order = np.lexsort((steps, times))
    times, level = times[order], np.cumsum(steps[order])
    entry = np.searchsorted(times, grid, side="left")  # changes before each grid point
    before = np.where(entry > 0, level[np.maximum(entry - 1, 0)], 0)
    peak = before.copy()
    inside = np.append(entry[1:], len(times))
    for i in np.flatnonzero(inside > entry).tolist():
        peak[i] = max(peak[i], level[entry[i]:inside[i]].max())
    return peak.astype(int).tolist()


def _durations(scanned: Scan) -> dict[str, Any] | None:
    """The histogram the page draws of the commands that ended (not resumed): ``DURATION_BINS`` bins, on a log
    scale when the longest is 50 times the shortest."""
    durations = scanned.durations()
    names = scanned.status_names
    status = np.array(names, dtype=object)[scanned.status] if len(names) else np.array([], dtype=object)
    keep = ~np.isnan(durations) & ~scanned.resumed & (status != "running") & (status != "queued")
    values, bad = durations[keep], status[keep] != "ok"
    if not len(values):
        return None
    low, high = float(values.min()), float(values.max())
    log = low > 0 and high / low > 50
    lo, hi = (np.log(low), np.log(high)) if log else (low, high)
    if hi <= lo:
        hi = lo + (0.01 if log else max(1e-3, lo * 0.01))
    edges = np.linspace(lo, hi, DURATION_BINS + 1)
    position = ((np.log(np.maximum(values, low)) if log else values) - lo) / (hi - lo)
    bins = np.clip(np.floor(position * DURATION_BINS).astype(np.int64), 0, DURATION_BINS - 1)
    return {"edges": (np.exp(edges) if log else edges).tolist(), "log": bool(log),
            "all": np.bincount(bins, minlength=DURATION_BINS).tolist(),
            "failed": np.bincount(bins[bad], minlength=DURATION_BINS).tolist()}
