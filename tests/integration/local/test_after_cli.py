"""``after=`` through the real CLI (SPEC 18): a chain build -> 3 runs -> summary beside an unrelated command,
with each command recording its own start and end; a failed build; the dry run's order; --resume after
Ctrl-C; what the run log and ``parallux show`` say of the dependencies; a bad after= refused."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from tests.helpers import run_cli, start_cli, wait_until, write_config

# Each command prints "start T" and "end T" (its own clock). build and unrelated each wait for the other to
# have started (30 s at most, then fail): both succeed only if they ran at the same time. run0 waits for the
# file `release` when the config is given block=1; build fails with fail=1.
CONFIG = """
    import os
    from parallux import goal

    HERE = os.path.dirname(os.path.abspath(__file__))
    goal.local(workspace="ws", max_jobs=4)

    def timed(body):
        return f"echo start $(date +%s.%N); {body}; status=$?; echo end $(date +%s.%N); exit $status"

    def meet(me, other):
        return (f"touch {HERE}/{me}.started; i=0; while [ ! -e {HERE}/{other}.started ] && [ $i -lt 600 ]; "
                f"do sleep 0.05; i=$((i+1)); done; [ -e {HERE}/{other}.started ]")

    fail = "; exit 3" if goal.args.get("fail") else ""
    block = f"while [ ! -e {HERE}/release ]; do sleep 0.05; done" if goal.args.get("block") else "true"
    build = goal.schd(timed(meet("build", "unrelated") + fail), name="build", work_relpath="build")
    runs = [goal.schd(timed(block if i == 0 else "sleep 0.1"), name=f"run{i}", work_relpath=f"run/{i}",
                      after=build) for i in range(3)]
    summary = goal.schd(timed("true"), name="summary", work_relpath="summary", after=runs)
    unrelated = goal.schd(timed(meet("unrelated", "build")), name="unrelated", work_relpath="unrelated")
    results = goal.issue().sync()
    print(" ".join(f"{r.name}={r.status}" for r in results))
"""
NAMES = ("build", "run0", "run1", "run2", "summary", "unrelated")
RELPATHS = {"build": "build", "run0": "run/0", "run1": "run/1", "run2": "run/2", "summary": "summary",
            "unrelated": "unrelated"}


def times(tmp_path: Path, name: str) -> tuple[float, float]:
    lines = dict(line.split() for line in (tmp_path / "ws" / RELPATHS[name] / "stdout.txt").read_text().splitlines())
    return float(lines["start"]), float(lines["end"])


def events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_after_cli_a_chain_runs_in_order_while_an_unrelated_command_runs_beside_the_build(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    done = run_cli(tmp_path, "config.py", "--log", "run.jsonl")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [f"{name}=ok" for name in NAMES]
    span = {name: times(tmp_path, name) for name in NAMES}
    assert span["unrelated"][0] < span["build"][1] and span["build"][0] < span["unrelated"][1]  # at once
    for index in range(3):
        assert span[f"run{index}"][0] >= span["build"][1]
        assert span["summary"][0] >= span[f"run{index}"][1]


def test_after_cli_the_run_log_and_show_carry_each_commands_dependencies(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    assert run_cli(tmp_path, "config.py", "--log", "run.jsonl").returncode == 0
    queued = {e["name"]: e for e in events(tmp_path / "run.jsonl") if e["event"] == "queued"}
    build = {"seq": queued["build"]["seq"], "work_relpath": "build"}
    assert [queued[f"run{i}"]["after"] for i in range(3)] == [[build]] * 3
    assert queued["summary"]["after"] == [{"seq": queued[f"run{i}"]["seq"], "work_relpath": f"run/{i}"}
                                          for i in range(3)]
    assert "after" not in queued["build"] and "after" not in queued["unrelated"]
    shown = run_cli(tmp_path, "show", "run.jsonl", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    rows = {row["name"]: row for row in json.loads(shown.stdout)["commands"]}
    assert rows["run1"]["after"] == [build] and rows["summary"]["after"] == queued["summary"]["after"]
    assert rows["build"]["after"] == []


def test_after_cli_a_failed_build_cancels_its_runs_and_the_summary_without_starting_them(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    done = run_cli(tmp_path, "config.py", "--log", "run.jsonl", "--", "fail=1")
    assert done.returncode == 1
    assert done.stdout == ""  # sync() raised: the build failed under check=True
    log = events(tmp_path / "run.jsonl")
    finished = {e["name"]: e for e in log if e["event"] == "finished"}
    assert {name: finished[name]["status"] for name in NAMES} == {
        "build": "failed", "run0": "cancelled", "run1": "cancelled", "run2": "cancelled", "summary": "cancelled",
        "unrelated": "ok"}
    for index in range(3):
        assert finished[f"run{index}"]["error"] == f"not started: its dependency 'build' (seq {finished['build']['seq']}) ended failed"
    assert "'run0'" in finished["summary"]["error"] and "'build'" in finished["summary"]["error"]
    assert {e["name"] for e in log if e["event"] == "finished" and e["runner"]} == {"build", "unrelated"}
    assert not (tmp_path / "ws" / "run").exists() and not (tmp_path / "ws" / "summary").exists()
    assert "its dependency 'build' (seq 1) ended failed" in done.stderr  # the summary names it


def test_after_cli_a_dry_run_lists_the_commands_in_an_order_of_their_dependencies(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    done = run_cli(tmp_path, "config.py", "--dry-run")
    assert done.returncode == 0, done.stderr
    order = [line.split("\t")[0] for line in done.stdout.splitlines() if "\t" in line]
    assert sorted(order) == sorted(NAMES)
    assert order.index("build") < min(order.index(f"run{i}") for i in range(3))
    assert max(order.index(f"run{i}") for i in range(3)) < order.index("summary")
    assert not (tmp_path / "ws").exists()


def test_after_cli_resume_after_ctrl_c_reruns_only_what_did_not_complete(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    ws = tmp_path / "ws"
    first = start_cli(tmp_path, "config.py", "--log", "first.jsonl", "--", "block=1")
    try:
        # The build and the unrelated command have completed (each waits for the other to start, but either
        # may end first) and run0 is going (it waits for `release`): interrupt.
        assert wait_until(lambda: all((ws / name / "result.json").exists() for name in ("build", "unrelated"))
                          and (ws / "run/0/stdout.txt").exists(), timeout=60)
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=30) == 130
    finally:
        first.kill()
        first.communicate()
    completed = {name for name in NAMES if (ws / RELPATHS[name] / "result.json").exists()
                 and json.loads((ws / RELPATHS[name] / "result.json").read_text()).get("returncode") == 0}
    assert {"build", "unrelated"} <= completed and not {"run0", "summary"} & completed
    build_record = (ws / "build" / "result.json").read_text()
    (tmp_path / "release").touch()
    second = run_cli(tmp_path, "config.py", "--resume", "--log", "second.jsonl", "--", "block=1")
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == [f"{name}=ok" for name in NAMES]
    ran = {e["name"] for e in events(tmp_path / "second.jsonl") if e["event"] == "finished" and not e["resumed"]}
    assert ran == set(NAMES) - completed  # the build is not rerun; its dependents run
    assert (ws / "build" / "result.json").read_text() == build_record
    assert f"resumed: {len(completed)} commands skipped" in second.stderr


def test_after_cli_refuses_what_is_no_handle_before_anything_runs(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        build = goal.schd("touch built", name="build")
        goal.schd("true", name="summary", after="build")
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2 and not (tmp_path / "ws").exists()
    assert ("goal.schd(): after= of command 'summary' must be a command handle, a group handle or a list of them, "
            "not str ('build')") in done.stderr
