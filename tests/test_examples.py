"""Every example in examples/ through the real CLI: it exits 0 and does what its header says it shows.

Examples are discovered with a glob, so a new example is covered at once -- and fails until it has an entry
in EXPECTATIONS saying what a user should see it do. ssh.py needs an SSH server: tests/test_ssh.py runs it
against the test sshd.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from tests.helpers import REPO, cli_env
from tests.machine_tree import fake_nvidia_smi

EXAMPLES = REPO / "examples"
RUN_ELSEWHERE = {"ssh.py": "needs an SSH server; tests/test_ssh.py runs it against the test sshd",
                 "slurm.py": "needs a Slurm cluster; tests/test_slurm.py runs it on the test cluster"}
FAKE_GPUS = {"gpus.py": 4}  # what needs GPUs gets a fake nvidia-smi reporting that many on its PATH
TIMEOUT = 120


@dataclass
class Run:
    done: subprocess.CompletedProcess[str]
    workspace: Path   # what the example got as `-- workspace=...`
    home: Path        # HOME (and the working directory) of the run

    @property
    def lines(self) -> list[str]:
        return self.done.stdout.splitlines()


def example_names() -> list[str]:
    return sorted(path.name for path in EXAMPLES.glob("*.py"))


def run_example(name: str, tmp_path: Path, *options: str) -> Run:
    workspace = tmp_path / "workspace"
    env = cli_env(tmp_path)
    if name in FAKE_GPUS:  # (beside tmp_path, which a dry run must leave empty)
        bin_dir = tmp_path.parent / f"{tmp_path.name}-bin"
        fake_nvidia_smi(bin_dir, FAKE_GPUS[name])
        env["PATH"] = f"{bin_dir}:{env['PATH']}"
    done = subprocess.run([sys.executable, "-m", "parallux", str(EXAMPLES / name), *options, "--",
                           f"workspace={workspace}"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)
    return Run(done, workspace, tmp_path)


# -- what each example must be seen to do ----------------------------------------------------------------


def expect_basic(run: Run) -> None:
    # basic.py keeps the seed's default workspace, ~/parallux (HOME is the test's directory).
    outputs = sorted(path.read_text() for path in (run.home / "parallux").rglob("stdout.txt"))
    assert len(outputs) == 10
    assert set(outputs) == {"runner=local-a tag=A\n", "runner=local-b tag=B\n"}


def expect_numa(run: Run) -> None:
    # "<name> <cores> <numa node> <Cpus_allowed_list seen by the command>": the command ran on its lease.
    rows = [re.fullmatch(r"(\S+) \((.*?),?\) (\d+) (\S+)", line) for line in run.lines]
    assert len(rows) == 2 and all(rows), run.lines
    for row in rows:
        assert row is not None
        cores = row.group(2).replace(" ", "")
        assert row.group(3) == "0" and row.group(4) == cores, row.group(0)


def expect_args(run: Run) -> None:
    assert run.lines[0] == f"argv=['workspace={run.workspace}'] case=hello repeat=2 flags=[]"
    for index in range(2):
        stdout = run.workspace / "hello" / str(index) / "stdout.txt"
        assert stdout.read_text() == f"case=hello index={index}\n"


def expect_immediate(run: Run) -> None:
    assert "immediate: immediate [runner=local status=ok]" in run.lines
    assert "pinned: pinned to other [runner=other status=ok]" in run.lines
    # Never synced by the config, yet parallux waited for it before exiting.
    left = list(run.workspace.rglob("left.txt"))
    assert [path.read_text() for path in left] == ["nobody waits for me\n"]


def expect_workloads(run: Run) -> None:
    inputs = sorted((EXAMPLES / "inputs" / "spec").glob("*/*/*.trace"))
    assert len(inputs) == 3
    for trace in inputs:
        suite, bench = trace.parent.parent.name, trace.parent.name
        work_dir = run.workspace / "smt-perf-test" / suite / bench / "ref"
        line_count = len(trace.read_text().splitlines())
        assert (work_dir / "lines.txt").read_text().strip() == str(line_count)
        assert f"smt_perf_{suite}_{bench}_ref: smt-perf-test/{suite}/{bench}/ref" in run.lines


def expect_status(run: Run) -> None:
    placed = [re.match(r"item_\d+ -> (\w+) \(had (\d+) free", line) for line in run.lines[:8]]
    assert all(placed), run.lines
    assert {m.group(1) for m in placed if m} == {"big", "small"}   # the feeder used both runners
    assert all(int(m.group(2)) > 0 for m in placed if m)          # and only ever a runner with a free slot
    outputs = sorted(path.read_text().strip() for path in run.workspace.rglob("stdout.txt"))
    assert len(outputs) == 8
    assert run.lines[8] == "free slots at the end: {'big': 3, 'small': 1}"


def expect_scheduler(run: Run) -> None:
    placed = dict(line.split(" ran on ") for line in run.lines)
    assert len(placed) == 6
    assert {runner for name, runner in placed.items() if name.startswith("wide_")} == {"big"}


def expect_timeouts(run: Run) -> None:
    statuses = {line.split(":")[0]: line.split()[1] for line in run.lines if "status=" in line}
    assert statuses == {"quick": "status=ok", "slow": "status=timeout", "tree": "status=timeout",
                        "fails": "status=failed"}
    # What the stopped command had written before its timeout is kept in its stdout.txt.
    assert any(line.startswith("  stdout so far: 'started'") for line in run.lines), run.lines
    assert "  stderr: 'oops'" in run.lines


def expect_staging(run: Run) -> None:
    for node in ("node-a", "node-b"):
        assert f"{node}: tool: 1 sent, 0 unchanged" in run.lines and f"{node}: inputs: 3 sent, 0 unchanged, " \
            "107 bytes" in run.lines
        assert os.access(run.workspace / node / "stage" / "bin" / "count-ops", os.X_OK)  # still executable
    for bench, ops in (("int/gcc", "2 loads, 1 stores"), ("int/mcf", "2 loads, 0 stores"),
                       ("fp/lbm", "2 loads, 2 stores")):
        assert any(line.startswith(f"{bench} on node-") and line.endswith(ops) for line in run.lines), run.lines
        assert (run.workspace / "collected" / f"{bench}.txt").read_text() == ops + "\n"


def expect_benchmark(run: Run) -> None:
    for size in (100_000, 300_000, 1_000_000):
        assert any(line.startswith(f"sum-{size}: 5 repetitions + 1 warm-up, status ok, wall median ")
                   for line in run.lines), run.lines
        assert f"  sum/{size}/r1: r1 {sum(range(size))}" in run.lines
        bench = run.workspace / "sum" / str(size)
        assert sorted(p.name for p in bench.iterdir()) == ["r1", "r2", "r3", "r4", "r5", "w1"]
        assert (bench / "w1" / "stdout.txt").read_text() == f"w1 {sum(range(size))}\n"
    # The summary gives the shuffle's seed, which repeats the order.
    assert "benchmarks: 3 (18 executions), order shuffle, seed 2024" in run.done.stderr
    # The run log has the machine and the probe's output.
    log = next(line.split(": ", 1)[1] for line in run.done.stderr.splitlines() if line.strip().startswith("run log:"))
    records = [json.loads(line) for line in Path(log.strip()).read_text().splitlines()]
    [probe] = [r for r in records if r["event"] == "probe"]
    assert probe["name"] == "python" and probe["returncode"] == 0 and probe["output"].startswith("Python 3.")
    assert [r["event"] for r in records].count("machine") == 1


def expect_steps(run: Run) -> None:
    assert run.lines[:6] == [f"{name}: ok" for name in ("build", "run-3", "run-7", "run-12", "summary", "unrelated")]
    assert run.lines[6] == "every run started after the build ended: True"
    assert run.lines[7:] == ["3 squared is 9", "7 squared is 49", "12 squared is 144"]
    assert (run.workspace / "summary" / "table.txt").read_text().splitlines() == run.lines[7:]


def expect_gpus(run: Run) -> None:
    assert run.lines[0] == "4 GPUs, free: [0, 1, 2, 3]"
    leased = dict(line.split(" GPU ") for line in run.lines[1:])
    assert set(leased) == {f"train-{i}" for i in range(8)} | {"eval"}
    assert leased["eval"] == "1" and {leased[f"train-{i}"] for i in range(8)} == {"0", "1", "2", "3"}
    told = {path.parent.name: path.read_text() for path in run.workspace.rglob("stdout.txt")}
    assert sorted(told.values()) == sorted(f"{'evaluating' if name == 'eval' else 'training'} on GPU {gpu}\n"
                                          for name, gpu in leased.items())


EXPECTATIONS: dict[str, Callable[[Run], None]] = {
    "gpus.py": expect_gpus,
    "steps.py": expect_steps,
    "benchmark.py": expect_benchmark,
    "staging.py": expect_staging,
    "basic.py": expect_basic,
    "numa.py": expect_numa,
    "args.py": expect_args,
    "immediate.py": expect_immediate,
    "workloads.py": expect_workloads,
    "status.py": expect_status,
    "scheduler.py": expect_scheduler,
    "timeouts.py": expect_timeouts,
}


# -- the tests ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", example_names())
def test_example_runs_and_does_what_it_shows(name: str, tmp_path: Path) -> None:
    if name in RUN_ELSEWHERE:
        pytest.skip(RUN_ELSEWHERE[name])
    expectation = EXPECTATIONS.get(name)
    assert expectation is not None, f"examples/{name} has no entry in EXPECTATIONS (tests/test_examples.py)"
    run = run_example(name, tmp_path)
    assert run.done.returncode == 0, run.done.stderr
    expectation(run)


@pytest.mark.parametrize("name", example_names())
def test_example_starts_like_a_parallux_config(name: str) -> None:
    path = EXAMPLES / name
    lines = path.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env parallux"
    assert lines[1].startswith("# ") and len(lines[1]) > 10, "the second line says what the example shows"
    assert os.access(path, os.X_OK), f"examples/{name} is not executable"


@pytest.mark.parametrize("name", example_names())
def test_example_dry_run_starts_nothing(name: str, tmp_path: Path) -> None:
    if name in RUN_ELSEWHERE:
        pytest.skip(RUN_ELSEWHERE[name])
    run = run_example(name, tmp_path, "--dry-run")
    assert run.done.returncode == 0, run.done.stderr
    assert "nothing was started" in run.done.stderr
    assert list(tmp_path.iterdir()) == [], "a dry run created files"


def test_example_expectations_name_existing_examples() -> None:
    assert set(EXPECTATIONS) <= set(example_names())
