"""The lanes of the trace and the report: each runner packed into as many slots as it ran commands at once.
"""

from __future__ import annotations

from pathlib import Path

from parallux._views.lanes import assign_slots
from parallux._views.reader import load_run
from parallux._views.records import Run


def test_assign_slots_packs_each_runner_into_as_many_lanes_as_ran_at_once(tmp_path: Path) -> None:
    from tests.synthetic import write_synthetic_log
    path = tmp_path / "run.jsonl"
    write_synthetic_log(path, 3000, seed=7)
    run: Run = load_run(str(path))
    lanes = assign_slots(run)
    assert {name: len(l.values) for name, l in lanes.items()} == {"local": 16, "big": 64, "node-a": 32, "node-b": 32}
    by_lane: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for attempt in run.attempts():
        by_lane.setdefault((attempt.runner or "", attempt.slot), []).append((attempt.start or 0, attempt.end or 0))
    for intervals in by_lane.values():
        intervals.sort()
        assert all(a[1] <= b[0] for a, b in zip(intervals, intervals[1:]))
    assert lanes["big"].kind == "core" and lanes["local"].kind == "slot"
