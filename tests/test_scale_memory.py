"""A finished command costs parallux a compact record, not more (issue 24: a million commands in 600 MB).

The real engine, goal, progress and run log, on plan launchers (an in-process launcher, ``tests/test_engine``)
and Trio's virtual clock; what Python allocates is counted by ``tracemalloc``. Two groups run one after the
other in one run, and the figure is the second group's memory per command: whatever a run allocates once
(the engine, the runner, the first commands' caches, Python's free lists: 2,000 tuples of each size) is paid
by the first group, so what the second adds is what every further command costs. No ``gc.collect()``, which
would empty the free lists: there is no cyclic garbage per command to collect. The config keeps every
handle and every result, as a config that does ``results = goal.issue().sync()`` does.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path
from typing import Any

from parallux._progress import Progress
from parallux._runlog import RunLog
from tests.test_engine import Run, ok_in

FIRST, SECOND = 2500, 2000
KEPT_PER_COMMAND = 500  # bytes a finished command keeps: handle, result, work path, sequence number (451 here)
PEAK_PER_COMMAND = 1000  # bytes at the worst moment: the above, queues, the run log's buffer, free lists (850)


def run_groups(run: Run, tmp_path: Path) -> tuple[float, float]:
    """(bytes kept, bytes at the peak) per command of the second group."""
    log = RunLog(str(tmp_path / "run.jsonl"), "test-run", str(tmp_path / "config.py"), root=str(tmp_path))
    log.open("test-run", str(tmp_path / "config.py"), [])
    run.engine.observers.extend([Progress(), log])
    goal = run.goal
    goal.setRunner(goal.local(name="a", max_jobs=8))
    goal.setParallel(8)
    kept: list[Any] = []

    def group(count: int, first: int) -> None:
        for index in range(first, first + count):
            goal.schd("true", work_relpath=f"w/{index}")
        kept.append(goal.issue().sync())

    tracemalloc.start()
    try:
        group(FIRST, 0)
        log.flush()  # (the run's periodic flush is not running here: the log is one more observer)
        gc.collect()  # (which empties Python's free lists, as it will at the end)
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        group(SECOND, FIRST)
        log.flush()
        peak = tracemalloc.get_traced_memory()[1]
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert [len(results) for results in kept] == [FIRST, SECOND]
    assert {r.status for results in kept for r in results} == {"ok"}
    return (after - before) / SECOND, (peak - before) / SECOND


def test_a_finished_command_keeps_a_compact_record_and_nothing_grows_per_command(tmp_path: Path) -> None:
    run = Run(ok_in(1))
    try:
        kept, peak = run_groups(run, tmp_path)
    finally:
        run.close()
    assert kept <= KEPT_PER_COMMAND, f"a finished command keeps {kept:.0f} bytes"
    assert peak <= PEAK_PER_COMMAND, f"a command costs {peak:.0f} bytes at the peak"
