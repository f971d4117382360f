"""Issue 20 end to end: a real campaign of benchmarks through the CLI -- repetitions that print a metric,
two runs of it, and ``show``/``compare`` reading what the launcher and the engine wrote (the views' own tests
read synthetic logs; this one reads real ones)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli, write_config

CAMPAIGN = """
    import random
    from parallux import goal

    label = goal.arg("run", help="a or b")
    shift = {"a": {}, "b": {"k00": 1.10, "k01": 0.90}}[label]
    rng = random.Random(f"seed-{label}")
    goal.local(workspace=goal.arg("ws"), max_jobs=4)
    for index in range(22):
        key = f"k{index:02d}"
        values = [round(shift.get(key, 1.0) * (1.0 + index / 10) * (1 + rng.gauss(0, 0.02)), 6) for _ in range(10)]
        cases = " ".join(f"r{n + 1}) v={value};;" for n, value in enumerate(values))
        goal.schd(f'case $PARALLUX_REPETITION in {cases} *) v=0;; esac; echo "kernel done: time_s=$v"',
                  name=f"kernel{index:02d}", work_relpath=f"{label}/{key}", repeat=10, warmup=1,
                  metrics={"time_s": r"time_s=([0-9.]+)"})
    results = goal.issue().sync()
    print(len(results), sorted({len(r.repetitions) for r in results}), sorted({len(r.warmups) for r in results}))
"""


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    home = tmp_path_factory.mktemp("campaign")
    write_config(home, CAMPAIGN)
    for label in ("a", "b"):
        done = run_cli(home, "config.py", "-q", "--log", str(home / f"{label}.jsonl"), "--",
                       f"run={label}", f"ws={home / 'ws'}", timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "22 [10] [1]"
    return home, home / "a.jsonl", home / "b.jsonl"


def test_campaign_compare_finds_the_one_slower_and_the_one_faster_benchmark(two_runs: tuple[Path, Path, Path]
                                                                          ) -> None:
    home, a, b = two_runs
    done = run_cli(home, "compare", str(a), str(b), "--metric", "time_s", "--match", "name", "--format", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    verdicts = {row["name"]: row["verdict"] for row in result["commands"]}
    assert verdicts == {f"kernel{i:02d}": "same" for i in range(22)} | {"kernel00": "slower", "kernel01": "faster"}
    row = next(r for r in result["commands"] if r["name"] == "kernel00")
    assert row["n_a"] == row["n_b"] == 10 and row["ratio"] == pytest.approx(1.10, abs=0.03)
    assert run_cli(home, "compare", str(a), str(b), "--metric", "time_s", "--match", "name",
                   "--fail-on", "slower").returncode == 1


def test_campaign_show_gives_a_row_per_benchmark_from_the_printed_metric(two_runs: tuple[Path, Path, Path]
                                                                         ) -> None:
    home, a, _ = two_runs
    done = run_cli(home, "show", str(a), "--metric", "time_s", "--format", "json")
    assert done.returncode == 0, done.stderr
    benchmarks = {b["name"]: b for b in json.loads(done.stdout)["benchmarks"]}
    assert len(benchmarks) == 22
    stats = benchmarks["kernel05"]["stats"]["time_s"]
    assert stats["n"] == 10 and stats["median"] == pytest.approx(1.5, rel=0.05)
    assert {"wall", "cpu", "memory", "time_s"} <= set(benchmarks["kernel05"]["stats"])
