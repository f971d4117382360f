"""Looking at benchmarks (SPEC 16) through the real CLI: ``show --metric``, ``--repetitions``, and ``compare``'s
verdicts, on synthetic run logs whose values are known (tests/synthetic.py writes them as parallux does)."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli
from tests.synthetic import write_benchmark_log

GFLOPS = [10.0, 10.2, 9.9, 10.1, 10.0, 30.0]  # r6 an outlier
TIMES = [1.5, 1.4, 1.6, 1.5, 1.45, 1.55]


def three_benchmarks() -> list[dict[str, Any]]:
    return [{"key": "mm/O2", "name": "mm-O2", "wall": TIMES, "metrics": {"gflops": GFLOPS}, "warmup": 1},
            {"key": "mm/O3", "name": "mm-O3", "wall": [1.0, 1.1, 1.2], "metrics": {"gflops": [12.0, 13.0, 14.0]}},
            {"key": "fft", "name": "fft", "wall": [2.0, 2.0, 2.5], "status": ["ok", "failed", "ok"]}]


@pytest.fixture
def bench_log(tmp_path: Path) -> Path:
    log = tmp_path / "bench.jsonl"
    write_benchmark_log(log, three_benchmarks(), plain=[{"name": "build", "work_relpath": "build", "wall": 3.0}],
                        order=("shuffle", 42))
    return log


def cli(home: Path, *args: str, status: int = 0) -> Any:
    done = run_cli(home, *args)
    assert done.returncode == status, (done.stdout, done.stderr)
    return done


def table_rows(text: str, first: str) -> dict[str, list[str]]:
    """The rows of the table whose header begins with the words ``first``, by their first cell (cells are
    apart by two spaces or more)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:len(first.split())] == first.split())
    rows = {}
    for line in lines[start + 1:]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells
    return rows


# -- show -------------------------------------------------------------------------------------------------


def test_show_a_row_per_benchmark_for_the_metric_asked(tmp_path: Path, bench_log: Path) -> None:
    text = cli(tmp_path, "show", str(bench_log), "--metric", "gflops").stdout
    assert "order    shuffle (seed 42)" in text
    assert "3 benchmarks, metric gflops" in text
    rows = table_rows(text, "NAME RUNNERS")
    # name, runners, status, n, median, CI, cv, min, max, outliers
    assert rows["mm-O2"][:5] == ["mm-O2", "local", "ok", "6", "10.05"]
    assert rows["mm-O2"][7:] == ["9.9", "30", "1 (r6)"]
    assert rows["mm-O3"][3:5] == ["3", "13"] and rows["mm-O3"][-1] == "0"
    assert rows["fft"][2:4] == ["failed", "0"]  # no metric: a row with no values
    assert "build" in table_rows(text, "NAME RUNNER HOST")  # the plain command keeps today's row
    wall = table_rows(cli(tmp_path, "show", str(bench_log)).stdout, "NAME RUNNERS")
    assert wall["mm-O2"][4] == "1.500 s" and wall["fft"][2:5] == ["failed", "2", "2.250 s"]


def test_show_json_carries_every_measure_of_every_benchmark(tmp_path: Path, bench_log: Path) -> None:
    data = json.loads(cli(tmp_path, "show", str(bench_log), "--format", "json").stdout)
    assert data["measures"] == ["wall", "cpu", "memory", "gflops"]
    assert data["run"]["order"] == [{"mode": "shuffle", "seed": 42}]
    benchmarks = {b["key"]: b for b in data["benchmarks"]}
    assert list(benchmarks) == ["mm/O2", "mm/O3", "fft"]
    o2 = benchmarks["mm/O2"]
    assert (o2["name"], o2["status"], o2["warmup"], o2["repeat"], o2["executions"], o2["metrics"]) == \
        ("mm-O2", "ok", 1, 6, 7, ["gflops"])
    gflops = o2["stats"]["gflops"]
    assert gflops["values"] == GFLOPS and gflops["repetitions"] == ["r1", "r2", "r3", "r4", "r5", "r6"]
    assert gflops["n"] == 6 and gflops["median"] == pytest.approx(10.05) and gflops["outliers"] == [5]
    assert (gflops["min"], gflops["max"]) == (9.9, 30.0)
    assert set(gflops) >= {"mean", "stdev", "cv", "mad", "ci_low", "ci_high", "ci_level"}
    assert o2["stats"]["wall"]["median"] == pytest.approx(1.5) and o2["stats"]["cpu"]["n"] == 6
    assert o2["stats"]["memory"]["n"] == 6
    assert benchmarks["fft"]["stats"]["wall"]["values"] == [2.0, 2.5]  # r2 failed: left out
    assert benchmarks["fft"]["stats"]["gflops"] is None
    assert [c["name"] for c in data["commands"]] == ["build"]  # the plain commands


def test_show_csv_a_row_per_benchmark_and_measure(tmp_path: Path, bench_log: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(cli(tmp_path, "show", str(bench_log), "--format", "csv").stdout)))
    by = {(r["key"], r["measure"]): r for r in rows}
    assert by[("mm/O2", "gflops")]["outlier_repetitions"] == "r6" and by[("mm/O2", "gflops")]["n"] == "6"
    assert float(by[("mm/O3", "wall")]["median"]) == pytest.approx(1.1)
    assert ("fft", "gflops") not in by and by[("build", "wall")]["kind"] == "command"


def test_show_an_unknown_metric_names_the_measures_the_run_has(tmp_path: Path, bench_log: Path) -> None:
    done = cli(tmp_path, "show", str(bench_log), "--metric", "gflop", status=2)
    assert "no measure 'gflop'" in done.stderr and "wall, cpu, memory, gflops" in done.stderr


def test_show_repetitions_lists_every_execution(tmp_path: Path, bench_log: Path) -> None:
    text = cli(tmp_path, "show", str(bench_log), "--repetitions", "--metric", "gflops").stdout
    lines = [line.split() for line in text.splitlines()]
    executions = [cells for cells in lines if cells and cells[0] == "mm-O2" and cells[1][:1] in "wr"
                  and cells[1][1:].isdigit()]
    assert [cells[1] for cells in executions] == ["w1", "r1", "r2", "r3", "r4", "r5", "r6"]
    assert executions[-1][6:8] == ["30", "outlier"] and "outlier" not in executions[1]
    data = json.loads(cli(tmp_path, "show", str(bench_log), "--repetitions", "--format", "json").stdout)
    rows = data["commands"]
    assert len(rows) == 7 + 3 + 3 + 1
    fft = [(r["repetition"], r["status"]) for r in rows if r["bench"] == "fft"]
    assert fft == [("r1", "ok"), ("r2", "failed"), ("r3", "ok")]
    assert next(r for r in rows if r["repetition"] == "r6")["metrics"] == {"gflops": 30.0}


# -- compare ----------------------------------------------------------------------------------------------


def campaign(prefix: str = "", shift: dict[int, float] | None = None, seed: int = 1, n: int = 10,
             count: int = 22) -> list[dict[str, Any]]:
    """``count`` benchmarks whose command prints time_s (lower is better) and gflops (higher is better), with
    1% noise; ``shift``: benchmark index -> factor of its time (its rate divided by it)."""
    rng = random.Random(seed)
    benchmarks = []
    for index in range(count):
        factor = (shift or {}).get(index, 1.0)
        times = [(1.0 + index / 10) * factor * rng.gauss(1.0, 0.01) for _ in range(n)]
        benchmarks.append({"key": f"{prefix}k{index:02d}", "name": f"kernel{index:02d}", "wall": times,
                           "metrics": {"time_s": times, "gflops": [100 / t for t in times]}})
    return benchmarks


def two_runs(tmp_path: Path, shift: dict[int, float], **options: Any) -> tuple[str, str]:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_benchmark_log(a, campaign(seed=1, **options), run_id="20240301-101500-aaaaaa")
    write_benchmark_log(b, campaign(shift=shift, seed=2, **options), run_id="20240302-101500-bbbbbb")
    return str(a), str(b)


def verdicts(tmp_path: Path, *args: str, status: int = 0) -> dict[str, str]:
    result = json.loads(cli(tmp_path, "compare", *args, "--format", "json", status=status).stdout)
    return {row["key"]: row["verdict"] for row in result["commands"]}


def test_compare_finds_exactly_the_benchmark_that_got_slower_and_the_one_that_got_faster(tmp_path: Path) -> None:
    a, b = two_runs(tmp_path, {0: 1.10, 1: 0.90})
    expected = {f"k{i:02d}": "same" for i in range(22)} | {"k00": "slower", "k01": "faster"}
    assert verdicts(tmp_path, a, b, "--metric", "time_s") == expected
    assert verdicts(tmp_path, a, b) == expected  # wall: the same durations
    assert verdicts(tmp_path, a, b, "--metric", "gflops", "--higher-is-better") == expected
    # a rate read as lower-is-better: the verdicts turn around
    assert verdicts(tmp_path, a, b, "--metric", "gflops")["k00"] == "faster"
    result = json.loads(cli(tmp_path, "compare", a, b, "--metric", "time_s", "--format", "json").stdout)
    row = next(r for r in result["commands"] if r["key"] == "k00")
    assert row["ratio"] == pytest.approx(1.10, abs=0.02) and row["ratio_low"] < row["ratio"] < row["ratio_high"]
    assert row["p_value"] < 0.05 and row["n_a"] == row["n_b"] == 10 and row["name"] == "kernel00"
    assert result["commands"][0]["key"] == "k00"  # the regressions first
    assert result["verdicts"] == {"slower": 1, "faster": 1, "same": 20, "too few": 0}
    assert result["geometric_mean_low"] < result["geometric_mean"] < result["geometric_mean_high"]
    assert result["geometric_mean"] == pytest.approx(1.0, abs=0.01)
    text = cli(tmp_path, "compare", a, b, "--metric", "time_s").stdout
    assert "verdicts 1 slower, 1 faster, 20 same" in text and "geometric mean" in text
    assert "time_s (lower is better)" in text


def test_compare_fail_on_is_a_regression_gate(tmp_path: Path) -> None:
    a, b = two_runs(tmp_path, {0: 1.10, 1: 0.90})
    cli(tmp_path, "compare", a, b, "--fail-on", "slower", status=1)
    cli(tmp_path, "compare", a, b, "--fail-on", "change", status=1)
    cli(tmp_path, "compare", a, b)  # no gate: 0 whatever the verdicts
    faster = tmp_path / "faster"
    faster.mkdir()
    a, b = two_runs(faster, {1: 0.90})
    cli(tmp_path, "compare", a, b, "--fail-on", "slower")  # only faster: the gate passes
    cli(tmp_path, "compare", a, b, "--fail-on", "change", status=1)
    assert cli(tmp_path, "compare", a, a, "--fail-on", "change").returncode == 0


def test_compare_says_too_few_below_three_executions(tmp_path: Path) -> None:
    a, b = two_runs(tmp_path, {0: 1.5}, n=2, count=3)
    result = json.loads(cli(tmp_path, "compare", a, b, "--format", "json", "--fail-on", "slower").stdout)
    assert {r["verdict"] for r in result["commands"]} == {"too few"}
    row = next(r for r in result["commands"] if r["key"] == "k00")
    assert row["ratio"] == pytest.approx(1.5, rel=0.05) and row["p_value"] is None and row["n_a"] == 2


def test_compare_match_name_across_two_work_prefixes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_benchmark_log(a, campaign("campaign-a/", count=4), run_id="20240301-101500-aaaaaa")
    write_benchmark_log(b, campaign("campaign-b/", {2: 1.2}, seed=2, count=4), run_id="20240302-101500-bbbbbb")
    by_key = cli(tmp_path, "compare", str(a), str(b))
    assert "matched  0 by key" in by_key.stdout
    hint = "the work paths differ by their prefix: A's are under 'campaign-a/', B's under 'campaign-b/'"
    assert hint in by_key.stdout and "--match name" in by_key.stdout and "generated" not in by_key.stdout
    found = verdicts(tmp_path, str(a), str(b), "--match", "name")
    assert found == {"kernel00": "same", "kernel01": "same", "kernel02": "slower", "kernel03": "same"}


def test_compare_refuses_what_it_cannot_compare(tmp_path: Path) -> None:
    a, b = two_runs(tmp_path, {}, count=2)
    unknown = cli(tmp_path, "compare", a, b, "--metric", "gflop", status=2)
    assert "no measure 'gflop': the runs have wall, cpu, memory, gflops, time_s" in unknown.stderr
    built_in = cli(tmp_path, "compare", a, b, "--higher-is-better", status=2)
    assert "--higher-is-better is for a metric" in built_in.stderr
    assert "must be a percentage" in cli(tmp_path, "compare", a, b, "--threshold", "-1", status=2).stderr
    # run B is read in a child process: what goes wrong there is said as for A
    missing = cli(tmp_path, "compare", a, str(tmp_path / "nothing.jsonl"), status=2)
    assert "parallux compare: " in missing.stderr and "nothing.jsonl" in missing.stderr
    missing = cli(tmp_path, "compare", str(tmp_path / "nothing.jsonl"), b, status=2)
    assert "nothing.jsonl" in missing.stderr


def test_compare_threshold_calls_a_small_real_change_same(tmp_path: Path) -> None:
    a, b = two_runs(tmp_path, {0: 1.04})
    assert verdicts(tmp_path, a, b, "--metric", "time_s")["k00"] == "slower"
    assert verdicts(tmp_path, a, b, "--metric", "time_s", "--threshold", "5")["k00"] == "same"


# -- the log's new records ----------------------------------------------------------------------------------


def test_records_whose_benchmark_fields_do_not_fit_are_skipped_and_named(tmp_path: Path, bench_log: Path) -> None:
    lines = bench_log.read_text().splitlines()
    broken = []
    for line in lines:
        record = json.loads(line)
        if record.get("event") == "finished" and record.get("metrics", {}).get("gflops") == 30.0:
            record["metrics"]["gflops"] = "fast"
        if record.get("event") == "benchmark" and record["key"] == "fft":
            record["metrics"] = [1]
        broken.append(json.dumps(record))
    bench_log.write_text("\n".join(broken) + "\n")
    done = cli(tmp_path, "show", str(bench_log), "--format", "json")
    assert "2 records skipped" in done.stderr and "finished whose metrics holds something else than numbers" \
        in done.stderr and "benchmark whose metrics holds something else than text" in done.stderr
    data = json.loads(done.stdout)
    benchmarks = {b["key"]: b for b in data["benchmarks"]}
    assert benchmarks["mm/O2"]["stats"]["gflops"]["n"] == 5  # the execution whose record was skipped: running
    assert benchmarks["fft"]["name"] == "fft"  # its executions still make it up
