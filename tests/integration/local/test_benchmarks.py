"""Benchmarks through the real CLI (SPEC 16): repeat= and warmup=, their work dirs and environment, the order of
their executions, --resume in the middle of one, and the one Result a config gets per benchmark."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli, start_cli, wait_until, write_config

ORDER_CONFIG = """
    import os
    from parallux import goal
    out = os.path.abspath("order.txt")
    goal.local(workspace="ws", max_jobs=1)
    mode = goal.arg("mode", "interleave")
    seed = goal.arg("seed", None, type=int)
    if mode != "interleave":
        goal.setOrder(mode, seed=seed)
    for name in ("a", "b", "c", "d"):
        goal.schd(f"echo {name} $PARALLUX_REPETITION >> {out}", name=name,
                  work_relpath=f"bench/{name}", repeat=3, warmup=1)
"""


def log_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_order(tmp_path: Path, *config_args: str, log: str = "run.jsonl") -> list[str]:
    """Run ORDER_CONFIG at max_jobs=1 and return the order its commands saw themselves start in."""
    (tmp_path / "order.txt").unlink(missing_ok=True)
    write_config(tmp_path, ORDER_CONFIG)
    done = run_cli(tmp_path, "config.py", "--log", log, "--", *config_args)
    assert done.returncode == 0, done.stderr
    return (tmp_path / "order.txt").read_text().splitlines()


def test_benchmarks_work_dirs_and_repetition_of_warmups_and_repetitions(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        named = goal.schd("echo $PARALLUX_REPETITION $PARALLUX_WORK_RELPATH", work_relpath="mm/O2", repeat=3,
                          warmup=2, name="mm")
        generated = goal.schd("echo $PARALLUX_REPETITION", repeat=2, name="gen")
        plain = goal.schd("echo plain:${PARALLUX_REPETITION:-none}", name="plain")
        goal.issue().sync()
        print(generated.work_relpath)
    """)
    done = run_cli(tmp_path, "config.py", "--log", "run.jsonl")
    assert done.returncode == 0, done.stderr
    bench = tmp_path / "ws" / "mm" / "O2"
    assert sorted(p.name for p in bench.iterdir()) == ["r1", "r2", "r3", "w1", "w2"]
    for label in ("w1", "w2", "r1", "r2", "r3"):
        assert (bench / label / "stdout.txt").read_text() == f"{label} mm/O2/{label}\n"
        assert {"command.txt", "stdout.txt", "stderr.txt", "result.json"} <= {p.name for p in (bench / label).iterdir()}
    key = done.stdout.splitlines()[0]
    assert sorted(p.name for p in (tmp_path / "ws" / key).iterdir()) == ["r1", "r2"]
    assert (tmp_path / "ws" / key / "r2" / "stdout.txt").read_text() == "r2\n"
    events = log_events(tmp_path / "run.jsonl")
    queued = [e for e in events if e["event"] == "queued"]
    assert sorted((e.get("bench"), e.get("repetition"), e["work_relpath"]) for e in queued if e["name"] == "mm") == \
        sorted(("mm/O2", label, f"mm/O2/{label}") for label in ("w1", "w2", "r1", "r2", "r3"))
    assert {(e["bench"], e["repetition"]) for e in queued if e["name"] == "gen"} == {(key, "r1"), (key, "r2")}
    assert [("bench" in e, "repetition" in e) for e in queued if e["name"] == "plain"] == [(False, False)]
    assert len({e["seq"] for e in queued}) == len(queued) == 8
    benchmarks = [e for e in events if e["event"] == "benchmark"]
    assert [(b["key"], b["name"], b["repeat"], b["warmup"], b["metrics"]) for b in benchmarks] == \
        [("mm/O2", "mm", 3, 2, []), (key, "gen", 2, 0, [])]
    assert benchmarks[0]["command"] == "echo $PARALLUX_REPETITION $PARALLUX_WORK_RELPATH"
    first_queued = events.index(queued[0])
    assert all(events.index(b) < first_queued for b in benchmarks)
    assert [(e["mode"], e["seed"]) for e in events if e["event"] == "order"] == [("interleave", None)]
    plain_dir = next(e["work_dir"] for e in events if e["event"] == "finished" and e["name"] == "plain")
    assert (Path(plain_dir) / "stdout.txt").read_text() == "plain:none\n"


def test_benchmarks_interleave_by_default_as_the_commands_see_it(tmp_path: Path) -> None:
    seen = run_order(tmp_path)
    assert seen == [f"{name} {label}" for label in ("w1", "r1", "r2", "r3") for name in "abcd"]


def test_benchmarks_grouped_runs_each_benchmark_back_to_back(tmp_path: Path) -> None:
    seen = run_order(tmp_path, "mode=grouped")
    assert seen == [f"{name} {label}" for name in "abcd" for label in ("w1", "r1", "r2", "r3")]
    assert [(e["mode"], e["seed"]) for e in log_events(tmp_path / "run.jsonl") if e["event"] == "order"] == \
        [("grouped", None)]


def test_benchmarks_shuffle_is_reproduced_by_its_recorded_seed(tmp_path: Path) -> None:
    first = run_order(tmp_path, "mode=shuffle", log="first.jsonl")
    rounds = [sorted(first[i:i + 4]) for i in range(0, 16, 4)]  # each round holds every benchmark once
    assert rounds == [[f"{name} {label}" for name in "abcd"] for label in ("w1", "r1", "r2", "r3")]
    seeds = [e["seed"] for e in log_events(tmp_path / "first.jsonl") if e["event"] == "order"]
    assert len(seeds) == 1 and isinstance(seeds[0], int)
    assert run_order(tmp_path, "mode=shuffle", f"seed={seeds[0]}", log="again.jsonl") == first
    assert [e["seed"] for e in log_events(tmp_path / "again.jsonl") if e["event"] == "order"] == seeds
    # Without a seed, two runs differ: 4!^4 orders, so three tries all equal would mean the seed is fixed.
    others = [run_order(tmp_path, "mode=shuffle", log=f"other{i}.jsonl") for i in range(3)]
    assert any(other != first for other in others)


def test_benchmarks_shuffle_seed_is_in_the_summary(tmp_path: Path) -> None:
    write_config(tmp_path, ORDER_CONFIG)
    done = run_cli(tmp_path, "config.py", "--", "mode=shuffle", "seed=4242")
    assert done.returncode == 0, done.stderr
    assert "benchmarks: 4 (16 executions), order shuffle, seed 4242" in done.stderr


def test_benchmarks_resume_after_ctrl_c_reruns_only_the_missing_repetitions(tmp_path: Path) -> None:
    release = tmp_path / "release"
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws", max_jobs=1)
        bench = goal.schd('echo $PARALLUX_REPETITION; [ $PARALLUX_REPETITION != r4 ] || [ -e {release} ] '
                          '|| sleep 1000', work_relpath="b", repeat=6, warmup=1)
        result = goal.issue().sync()[0]
        print(result.status, [r.resumed for r in result.repetitions], [r.resumed for r in result.warmups])
        print(result.stats["wall"].n)
    """)
    bench = tmp_path / "ws" / "b"
    first = start_cli(tmp_path, "config.py")
    try:
        assert wait_until(lambda: (bench / "r4" / "stdout.txt").exists(), timeout=30)
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=30) == 130
    finally:
        first.kill()
        first.communicate()
    assert sorted(p.parent.name for p in bench.glob("*/result.json") if '"returncode": 0' in p.read_text()
                  or '"returncode":0' in p.read_text()) == ["r1", "r2", "r3", "w1"]
    before = {label: (bench / label / "result.json").read_text() for label in ("w1", "r1", "r2", "r3")}
    release.touch()
    second = run_cli(tmp_path, "config.py", "--resume")
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == ["ok [True, True, True, False, False, False] [True]", "6"]
    assert "resumed: 4 commands skipped" in second.stderr
    for label, record in before.items():  # untouched: not run again, nothing moved aside
        assert (bench / label / "result.json").read_text() == record
        assert not (bench / label / ".history").exists()
    for label in ("r4", "r5", "r6"):
        assert (bench / label / "stdout.txt").read_text() == f"{label}\n"


def test_benchmarks_result_has_repetitions_warmups_status_and_stats(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        bench = goal.schd("echo $PARALLUX_REPETITION", work_relpath="b", repeat=4, warmup=2, name="b")
        plain = goal.schd("true", name="plain")
        results = goal.issue().sync()
        result = bench.sync()
        assert results[0] is result and results[1] is plain.sync()
        print(result.name, result.status, result.work_relpath, len(result.repetitions), len(result.warmups))
        print([r.work_relpath for r in result.repetitions], [r.work_relpath for r in result.warmups])
        print([r.read_stdout().strip() for r in result.repetitions])
        print(sorted(result.stats))
        wall = result.stats["wall"]
        print(wall.n, wall.min <= wall.median <= wall.max, wall.ci_low <= wall.median <= wall.ci_high)
        print(result.stats["memory"].n, result.stats["memory"].min > 0, result.stats["cpu"].n)
        print(plain.sync().repetitions, plain.sync().warmups, plain.sync().stats)
        print(len(bench.executions), bench.done(), bench.assigned(), bench.work_relpath, bench.runner_name)
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "b ok b 4 2",
        "['b/r1', 'b/r2', 'b/r3', 'b/r4'] ['b/w1', 'b/w2']",
        "['r1', 'r2', 'r3', 'r4']",
        "['cpu', 'memory', 'wall']",
        "4 True True",
        "4 True 4",
        "[] [] {}",
        "6 True True b local",
    ]


def test_benchmarks_check_true_raises_naming_the_failed_repetition(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        check = goal.arg("check", True, type=bool)
        bench = goal.schd("echo bad >&2; [ $PARALLUX_REPETITION != r2 ]", work_relpath="b", repeat=3, name="b",
                          check=check)
        result = goal.issue().sync()[0]
        print(result.status, result.returncode, [r.status for r in result.repetitions], result.stats["wall"].n)
    """)
    failed = run_cli(tmp_path, "config.py")
    assert failed.returncode == 1
    assert "command 'b' (repetition r2) on runner 'local' exited with status 1" in failed.stderr
    assert f"work dir: {tmp_path / 'ws' / 'b' / 'r2'}" in failed.stderr
    assert failed.stdout == ""
    unchecked = run_cli(tmp_path, "config.py", "--", "check=false")
    assert unchecked.returncode == 0, unchecked.stderr
    assert unchecked.stdout.splitlines() == ["failed 1 ['ok', 'failed', 'ok'] 2"]


@pytest.mark.parametrize("options, message", [
    ("repeat=0", "repeat must be >= 1, not 0"),
    ("warmup=-1", "warmup must be >= 0, not -1"),
    ("repeat='3'", "repeat must be an int, not str ('3')"),
    ("repat=3", "unknown option 'repat' (did you mean 'repeat'?)"),
])
def test_benchmarks_bad_options_are_config_errors(tmp_path: Path, options: str, message: str) -> None:
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws")
        goal.schd("touch ran", {options})
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize("call, message", [
    ('goal.setOrder("random")', "setOrder() mode must be one of interleave, shuffle, grouped, not 'random'"),
    ('goal.setOrder("shuffle", seed="7")', "setOrder() seed must be an int, not str ('7')"),
    ('goal.setOrder("shufle")', "setOrder() mode must be one of"),
])
def test_benchmarks_bad_order_is_a_config_error(tmp_path: Path, call: str, message: str) -> None:
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws")
        {call}
        goal.schd("true", repeat=2)
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_benchmarks_execution_work_dirs_cannot_collide_with_a_command(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        goal.schd("true", work_relpath="b/r2")
        goal.schd("true", work_relpath="b", repeat=3)
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2 and "work_relpath 'b/r2' is already used" in done.stderr, done.stderr


def test_benchmarks_dry_run_plans_one_line_per_benchmark(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        for i in range(3):
            goal.schd(f"echo {i}", work_relpath=f"b{i}", name=f"b{i}", repeat=10, warmup=2)
        goal.schd("echo plain", work_relpath="p", name="p")
        print([r.status for r in goal.issue().sync()])
    """)
    done = run_cli(tmp_path, "config.py", "--dry-run")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    plan = [line.split("\t") for line in lines if "\t" in line]
    assert sorted(row[0] for row in plan) == ["b0 (10 repetitions + 2 warm-ups)", "b1 (10 repetitions + 2 warm-ups)",
                                              "b2 (10 repetitions + 2 warm-ups)", "p"]
    row = next(row for row in plan if row[0].startswith("b1"))
    assert row[1] == "local" and row[2] == f"{tmp_path / 'ws' / 'b1'}/{{w1..w2,r1..r10}}"
    assert row[4] == "sh -c 'echo 1'"
    assert lines[-1] == "['planned', 'planned', 'planned', 'planned']"
    assert not (tmp_path / "ws").exists()


def test_benchmarks_summary_names_a_benchmark_with_an_outlier(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws", max_jobs=1)
        goal.schd("[ $PARALLUX_REPETITION != r5 ] || sleep 2", work_relpath="noisy", repeat=8)
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert "benchmarks: 1 (8 executions), order interleave" in done.stderr
    line = next(line for line in done.stderr.splitlines() if line.strip().startswith("noisy wall: median "))
    # (on a loaded machine another repetition of `true` may stand out as well: r5 must be among them)
    assert "r5" in re.findall(r"\b[wr]\d+\b", line.split(", outlier", 1)[1]), done.stderr


def test_benchmarks_run_retries_and_timeouts_apply_per_execution(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        local = goal.local(workspace="ws")
        # r2 fails its first attempt only: retried alone, in its own work dir
        flaky = goal.run("[ $PARALLUX_REPETITION != r2 ] || [ -e tried ] || { touch tried; exit 3; }",
                         work_relpath="flaky", repeat=3, retries=1)
        # r2 hangs: it alone times out, and the benchmark's status is its
        slow = local.run("[ $PARALLUX_REPETITION != r2 ] || sleep 60", work_relpath="slow", repeat=3, warmup=1,
                         timeout=2, check=False)
        result = flaky.sync()
        print(result.status, [len(r.attempts) for r in result.repetitions])
        result = slow.sync()
        print(result.status, [r.status for r in result.warmups + result.repetitions], result.stats["wall"].n)
        try:
            goal.run("[ $PARALLUX_REPETITION != w1 ]", work_relpath="bad", warmup=1).sync()
        except Exception as exc:
            print(type(exc).__name__, "(warm-up w1)" in str(exc))
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 1, done.stderr  # (the failed warm-up, under check=True)
    assert done.stdout.splitlines() == ["ok [1, 2, 1]", "timeout ['ok', 'ok', 'timeout', 'ok'] 2",
                                        "CommandFailed True"]
    assert (tmp_path / "ws" / "flaky" / "r2" / ".history").is_dir()
    assert not (tmp_path / "ws" / "flaky" / "r1" / ".history").exists()


def test_benchmarks_clean_removes_a_generated_benchmark_and_keeps_a_named_one(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        goal.schd("echo gen", name="gen", repeat=2, warmup=1)
        goal.schd("echo named", name="named", work_relpath="named", repeat=2)
    """)
    runs = []
    for _ in range(2):
        done = run_cli(tmp_path, "config.py")
        assert done.returncode == 0, done.stderr
        runs.append(next(line for line in done.stderr.splitlines() if "run log: " in line).rsplit("/", 1)[1][:-6])
    ws = tmp_path / "ws"
    first = ws / runs[0]
    assert sorted(p.name for p in next(first.iterdir()).iterdir()) == ["r1", "r2", "w1"]
    done = run_cli(tmp_path, "clean", "--keep", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not first.exists(), sorted(str(p) for p in first.rglob("*"))
    assert sorted(p.name for p in next((ws / runs[1]).iterdir()).iterdir()) == ["r1", "r2", "w1"]
    assert (ws / "named" / "r2" / "stdout.txt").read_text() == "named\n"


def test_benchmarks_stats_and_summary_cover_their_metrics(tmp_path: Path) -> None:
    # gflops per repetition: r1..r6 = 10, 10, 10, 10, 10, 50 -> an outlier at r6; steady wall times are not judged
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        bench = goal.schd('case $PARALLUX_REPETITION in r6) echo "GFLOP/s: 50";; *) echo "GFLOP/s: 10";; esac',
                          work_relpath="mm", repeat=6, warmup=1, metrics={"gflops": r"GFLOP/s: ([0-9.]+)"})
        goal.issue()
        result = bench.sync()
        gflops = result.stats["gflops"]
        print(gflops.n, gflops.median, list(gflops.outliers), [r.metrics for r in result.warmups])
    """)
    done = run_cli(tmp_path, "config.py", "--log", "run.jsonl")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["6 10.0 [5] [{'gflops': 10.0}]"]
    assert [e["metrics"] for e in log_events(tmp_path / "run.jsonl") if e["event"] == "benchmark"] == [["gflops"]]
    line = next(line for line in done.stderr.splitlines() if line.strip().startswith("mm "))
    assert line.strip().startswith("mm gflops: median 10, CI +-") and line.endswith("outlier r6"), done.stderr
    assert "wall" not in line
