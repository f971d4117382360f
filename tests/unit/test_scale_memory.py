"""A finished command costs parallux a compact record, not more (issue 24: a million commands in 600 MB).

The real engine, goal, progress and run log, on plan launchers (an in-process launcher, ``tests/plan_engine``)
and Trio's virtual clock; what Python allocates is counted by ``tracemalloc``. Groups of commands run one
after the other in one run: the first pays what a run allocates once (the engine, the runner, caches); the
last gives what a command keeps, and the difference of the last two groups' peaks what a command more costs
at the worst moment. The config keeps every handle and every result, as one doing ``results =
goal.issue().sync()`` does.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path
from typing import Any

from parallux._progress import Progress
from parallux._runlog import RunLog
from tests.plan_engine import Run, ok_in

# 4,900 commands in all: the registrar's set of work paths (a hash table, grown 4x at a time while small) then
# grows during the first group only, so that no one group is charged a whole new table
FIRST, SMALL, LARGE = 1300, 1000, 2600
KEPT_PER_COMMAND = 500  # bytes a finished command keeps: handle, result, work path, sequence number (~450 here)
PEAK_PER_COMMAND = 600  # bytes a command more costs at the worst moment: the above, and its share of queues


def run_groups(run: Run, tmp_path: Path) -> tuple[float, float]:
    """(bytes kept per command, bytes at the peak per command more): of a group of LARGE commands after the
    first, and the difference of the peaks of a group of SMALL and one of LARGE (what a run pays once at
    its peak -- the run log's buffer, Python's free lists refilled -- cancels out)."""
    log = RunLog(str(tmp_path / "run.jsonl"), "test-run", str(tmp_path / "config.py"), root=str(tmp_path))
    log.open("test-run", str(tmp_path / "config.py"), [])
    run.engine.observers.extend([Progress(), log])
    goal = run.goal
    goal.setRunner(goal.local(name="a", max_jobs=8))
    goal.setParallel(8)
    kept: list[Any] = []

    def group(count: int) -> tuple[int, int]:
        """(bytes kept, bytes at the peak) more than before it."""
        log.flush()  # (the run's periodic flush is not running here: the log is one more observer)
        gc.collect()  # (which empties Python's free lists, as it will at the end)
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        first = sum(map(len, kept))
        for index in range(first, first + count):
            goal.schd("true", work_relpath=f"w/{index}")
        kept.append(goal.issue().sync())
        log.flush()
        peak = tracemalloc.get_traced_memory()[1]
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before, peak - before

    tracemalloc.start()
    try:
        group(FIRST)
        small = group(SMALL)
        large = group(LARGE)
    finally:
        tracemalloc.stop()
    assert [len(results) for results in kept] == [FIRST, SMALL, LARGE]
    assert {r.status for results in kept for r in results} == {"ok"}
    return large[0] / LARGE, (large[1] - small[1]) / (LARGE - SMALL)


def test_a_finished_command_keeps_a_compact_record_and_nothing_grows_per_command(tmp_path: Path) -> None:
    run = Run(ok_in(1))
    try:
        kept, peak = run_groups(run, tmp_path)
    finally:
        run.close()
    assert kept <= KEPT_PER_COMMAND, f"a finished command keeps {kept:.0f} bytes"
    assert peak <= PEAK_PER_COMMAND, f"a command costs {peak:.0f} bytes at the peak"
