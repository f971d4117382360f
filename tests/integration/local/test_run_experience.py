"""Progress lines, the run log, the summary, --resume, retries, halt and resource figures, via the real CLI."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import kill_pids, new_token, pids_with_env, run_cli, start_cli, wait_until, write_config


def log_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def log_path_of(stderr: str) -> Path:
    line = next(line for line in stderr.splitlines() if "run log: " in line)
    return Path(line.split("run log: ", 1)[1].strip())


def test_run_experience_plain_progress_lines_when_not_a_terminal(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws", max_jobs=2)
        for i in range(6):
            goal.schd("sleep 0.4")
        goal.schd("echo boom >&2; exit 4", name="bad", check=False)
    """)
    done = run_cli(tmp_path, "config.py", "--progress-interval", "0.3")
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if " running, " in line]
    assert len(progress) >= 2
    assert all(line.startswith("parallux: ") and "queued" in line and "elapsed" in line for line in progress)
    assert "parallux: FAILED command 'bad'" in done.stderr and "| boom" in done.stderr
    summary = done.stderr[done.stderr.index("parallux: 7 commands"):]
    assert "(1 failed, 6 ok)" in summary and "runner local: 7 runs (6 ok, 1 failed)" in summary and "run log: " in summary


def test_run_experience_quiet_prints_only_the_summary(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        goal.schd("exit 1", check=False)
    """)
    done = run_cli(tmp_path, "config.py", "-q", "--progress-interval", "0.05")
    assert "FAILED" not in done.stderr and " running, " not in done.stderr
    assert "parallux: 1 command (1 failed)" in done.stderr


def test_run_experience_verbose_prints_every_event(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        goal.schd("true", name="t")
    """)
    done = run_cli(tmp_path, "config.py", "-v")
    assert "parallux: started 't' on local" in done.stderr and "parallux: finished 't' on local ok" in done.stderr


def test_run_experience_run_log_records_every_command(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws", max_jobs=3)
        for i in range(5):
            goal.schd(f"exit {int(i == 2)}", name=f"c{i}", check=False)
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    path = log_path_of(done.stderr)
    runs = tmp_path / ".local" / "state" / "parallux" / "runs"
    assert path.parent.parent == runs and path.parent.name.startswith("config-")  # one directory per config
    assert (runs / "latest.jsonl").resolve() == path.resolve()
    assert (path.parent / "latest.jsonl").resolve() == path.resolve()
    events = log_events(path)
    assert events[0]["event"] == "run_started" and events[-1]["event"] == "run_finished"
    assert events[-1]["exit_status"] == 0 and events[-1]["counts"] == {"ok": 4, "failed": 1}
    finished = {e["name"]: e for e in events if e["event"] == "finished"}
    assert sorted(finished) == [f"c{i}" for i in range(5)]
    assert finished["c2"]["status"] == "failed" and finished["c2"]["returncode"] == 1
    for event in finished.values():
        assert event["runner"] == "local" and Path(event["work_dir"]).is_dir()
        assert event["end"] >= event["start"] and event["duration"] >= 0 and event["attempt"] == 0
        assert event["user_seconds"] is not None and event["max_rss_kb"] > 0
    assert sum(e["event"] == "queued" for e in events) == 5 and sum(e["event"] == "finished" for e in events) == 5


def test_run_experience_run_log_is_complete_after_sigint(tmp_path: Path) -> None:
    token = new_token()
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws", max_jobs=2)
        for i in range(8):
            goal.schd("true", name=f"quick{{i}}")
        for i in range(3):
            goal.schd("sleep 1000", name=f"slow{{i}}", env={{"TOKEN": "{token}"}})
    """)
    log = tmp_path / "run.jsonl"
    process = start_cli(tmp_path, "config.py", "--log", str(log))
    try:
        assert wait_until(lambda: len(pids_with_env(token)) >= 4, timeout=15)  # sh + sleep, twice
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
        assert process.returncode == 130
    finally:
        process.kill()
        process.communicate()
        kill_pids(pids_with_env(token))
    events = log_events(log)  # every line is valid JSON
    finished = {e["name"]: e["status"] for e in events if e["event"] == "finished"}
    assert all(finished[f"quick{i}"] == "ok" for i in range(8))
    assert sorted(finished[f"slow{i}"] for i in range(3)) == ["cancelled"] * 3
    assert events[-1]["event"] == "run_finished" and events[-1]["exit_status"] == 130


def test_run_experience_resume_runs_only_what_is_left(tmp_path: Path) -> None:
    release = tmp_path / "release"
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws", max_jobs=6)
        for i in range(6):
            goal.schd(f"echo {{i}}; [ {{i}} -lt 3 ] || [ -e {release} ] || sleep 1000", work_relpath=f"r/{{i}}")
        for r in goal.issue().sync():
            print(r.work_relpath, r.status, r.resumed)
    """)
    first = start_cli(tmp_path, "config.py")
    try:
        assert wait_until(lambda: len(list((tmp_path / "ws" / "r").glob("*/result.json"))) == 3, timeout=15)
        first.send_signal(signal.SIGINT)
        first.wait(timeout=15)
    finally:
        first.kill()
        first.communicate()
    release.touch()
    before = {i: (tmp_path / "ws" / "r" / str(i) / "result.json").read_text() for i in range(3)}
    second = run_cli(tmp_path, "config.py", "--resume")
    assert second.returncode == 0, second.stderr
    assert second.stdout.split("\n")[:6] == [f"r/{i} ok {i < 3}" for i in range(6)]
    assert "resumed: 3 commands skipped" in second.stderr
    for i in range(3):  # untouched: not run again, nothing moved aside
        assert (tmp_path / "ws" / "r" / str(i) / "result.json").read_text() == before[i]
        assert not (tmp_path / "ws" / "r" / str(i) / ".history").exists()
    for i in range(3, 6):
        assert (tmp_path / "ws" / "r" / str(i) / "stdout.txt").read_text() == f"{i}\n"


def test_run_experience_resume_reruns_a_changed_command(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        goal.schd("echo " + goal.args["word"], work_relpath="w")
    """)
    assert run_cli(tmp_path, "config.py", "--", "word=one").returncode == 0
    done = run_cli(tmp_path, "config.py", "--resume", "--", "word=two")
    assert done.returncode == 0 and "resumed" not in done.stderr
    assert (tmp_path / "ws" / "w" / "stdout.txt").read_text() == "two\n"


def test_run_experience_records_the_host_and_a_resumed_result_keeps_it(tmp_path: Path) -> None:
    """Every result.json names the machine that ran it; a resumed result (and ``show``) keeps that machine,
    not the one the runner is on now (a work dir on a shared file system, written by another node)."""
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        r = goal.run("echo hi", work_relpath="w").sync()
        print(r.host, r.resumed)
    """)
    first = run_cli(tmp_path, "config.py")
    assert first.returncode == 0, first.stderr
    here = first.stdout.split()[0]
    record_path = tmp_path / "ws" / "w" / "result.json"
    record = json.loads(record_path.read_text())
    assert record["host"] == here
    record_path.write_text(json.dumps(dict(record, host="node-b")))  # as another machine left it
    second = run_cli(tmp_path, "config.py", "--resume")
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ["node-b", "True"]
    finished = [e for e in log_events(log_path_of(second.stderr)) if e["event"] == "finished"]
    assert [e["host"] for e in finished] == ["node-b"]
    shown = run_cli(tmp_path, "show", str(log_path_of(second.stderr)), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert [c["host"] for c in json.loads(shown.stdout)["commands"]] == ["node-b"]


@pytest.mark.parametrize("retries, status, returncode", [(2, "ok", 0), (1, "failed", 1)])
def test_run_experience_retries_rerun_and_keep_every_attempt(tmp_path: Path, retries: int, status: str,
                                                             returncode: int) -> None:
    counter = tmp_path / "count"
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws")
        script = "n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; echo try $n; [ $n -ge 3 ]"
        r = goal.run(script, retries={retries}, work_relpath="flaky", check=False).sync()
        print(r.status, r.attempt)
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [status, str(retries)]
    work = tmp_path / "ws" / "flaky"
    assert (work / "stdout.txt").read_text() == f"try {retries + 1}\n"
    assert [(work / ".history" / str(n) / "stdout.txt").read_text() for n in range(1, retries + 1)] == [
        f"try {n}\n" for n in range(1, retries + 1)]
    assert json.loads((work / "result.json").read_text())["returncode"] == returncode
    assert done.stderr.count("parallux: retrying 'job1'") == retries


def halt_config(tmp_path: Path, token: str) -> None:
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws", max_jobs=2)
        goal.schd("sleep 1000", name="long", env={{"TOKEN": "{token}"}}, timeout=20)
        goal.schd("sleep 0.2; exit 3", name="first-failure")
        goal.schd("sleep 0.4; exit 3", name="second-failure")
        goal.schd("true", name="after")
        group = goal.issue()
        try:
            group.sync()
        finally:
            print({{c.name: c.result.status for c in group}})
    """)


@pytest.mark.parametrize("halt, expected", [
    ("never", {"long": "timeout", "first-failure": "failed", "second-failure": "failed", "after": "ok"}),
    ("soon", {"long": "timeout", "first-failure": "failed", "second-failure": "cancelled", "after": "cancelled"}),
    ("soon:2", {"long": "timeout", "first-failure": "failed", "second-failure": "failed", "after": "cancelled"}),
    ("now", {"long": "cancelled", "first-failure": "failed", "second-failure": "cancelled", "after": "cancelled"}),
    ("now:2", {"long": "cancelled", "first-failure": "failed", "second-failure": "failed", "after": "cancelled"}),
])
def test_run_experience_halt_policies(tmp_path: Path, halt: str, expected: dict[str, str]) -> None:
    token = new_token()
    halt_config(tmp_path, token)
    timeout_expected = "timeout" in expected.values()
    if timeout_expected:  # "long" runs until its timeout: make that short for the test
        text = (tmp_path / "config.py").read_text().replace("timeout=20", "timeout=1.5")
        (tmp_path / "config.py").write_text(text)
    try:
        started = time.monotonic()
        done = run_cli(tmp_path, "config.py", "--halt", halt)
        elapsed = time.monotonic() - started
        assert done.returncode == 1
        assert eval(done.stdout.strip()) == expected
        if halt.startswith("now"):
            assert elapsed < 10 and "halted (now)" in done.stderr
        assert pids_with_env(token) == []
    finally:
        kill_pids(pids_with_env(token))


def test_run_experience_set_halt_in_the_config(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal, CommandError
        goal.local(workspace="ws", max_jobs=1)
        goal.setHalt("soon")
        handles = [goal.run("exit 1", check=False), goal.run("exit 1"), goal.run("true")]
        for handle in handles:
            try:
                handle.sync()
            except CommandError:
                pass
        print([h.result.status for h in handles])
    """)
    done = run_cli(tmp_path, "config.py")
    # a check=False failure is expected by the config and does not count towards the halt
    assert done.stdout.strip() == "['failed', 'failed', 'cancelled']"
    assert done.returncode == 1 and "halted (soon) after 1 command failed" in done.stderr


def test_run_experience_peak_rss_of_a_200_mb_command(tmp_path: Path) -> None:
    write_config(tmp_path, """
        import sys
        from parallux import goal
        goal.local(workspace="ws")
        r = goal.run([sys.executable, "-c", "b = b'x' * (200 * 1024 * 1024)"]).sync()
        print(r.max_rss_kb, r.user_seconds, r.system_seconds)
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    rss_kb, user, system = done.stdout.split()
    assert 0.8 * 200 * 1024 <= int(rss_kb) <= 1.2 * 200 * 1024
    assert float(user) + float(system) > 0


def test_run_experience_second_ctrl_c_kills_at_once(tmp_path: Path) -> None:
    token = new_token()
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws")
        goal.run("trap '' TERM; sleep 1000 & wait; sleep 1000", env={{"TOKEN": "{token}"}})
    """)
    log = tmp_path / "run.jsonl"
    process = start_cli(tmp_path, "config.py", "--log", str(log))
    try:
        assert wait_until(lambda: len(pids_with_env(token)) == 2, timeout=15)
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        second = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
        assert time.monotonic() - second < 1.5  # not the 2 s grace a TERM-ignoring command gets otherwise
        assert process.returncode == 130
        assert wait_until(lambda: pids_with_env(token) == [], timeout=2)
    finally:
        process.kill()
        process.communicate()
        kill_pids(pids_with_env(token))
    events = log_events(log)
    assert [e["status"] for e in events if e["event"] == "finished"] == ["cancelled"]
    assert events[-1]["event"] == "run_finished"


def test_run_experience_sigkill_of_parallux_still_leaves_a_record(tmp_path: Path) -> None:
    token = new_token()
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws")
        goal.run("trap '' TERM; sleep 1000", work_relpath="k", env={{"TOKEN": "{token}"}})
    """)
    process = start_cli(tmp_path, "config.py")
    try:
        assert wait_until(lambda: len(pids_with_env(token)) >= 1, timeout=15)
        process.kill()
        process.wait(timeout=10)
        record = tmp_path / "ws" / "k" / "result.json"
        assert wait_until(record.exists, timeout=6)  # TERM is ignored: written after the KILL that follows
        assert json.loads(record.read_text())["status"] == "cancelled"
        assert pids_with_env(token) == []
    finally:
        process.communicate()
        kill_pids(pids_with_env(token))


def test_run_experience_goal_keeps_working_after_a_now_halt(tmp_path: Path) -> None:
    write_config(tmp_path, """
        import time
        from parallux import goal, CommandError
        goal.local(workspace="ws")
        goal.setHalt("now")
        try:
            goal.run("false").sync()
        except CommandError:
            pass
        goal.setParallel(2)
        print(goal.run("true", check=False).sync().status)
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 1
    assert done.stdout.strip() == "cancelled" and "RunFinishedError" not in done.stderr


def test_run_experience_a_long_command_line_is_shortened_where_failures_are_told(tmp_path: Path) -> None:
    command = "echo boom >&2; exit 3 # " + "x" * 100_000
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws")
        goal.run("{command}", work_relpath="long")
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 1
    shortened = f"    command:  {command[:200]}... ({len(command)} bytes; full text in {tmp_path}/ws/long/command.txt)"
    assert done.stderr.count(shortened) == 2, done.stderr[:3000]  # the live failure line and the summary
    assert len(done.stderr) < 5000 and "| boom" in done.stderr
    assert (tmp_path / "ws" / "long" / "command.txt").read_text().startswith(command + "\n")  # kept whole
    finished = [e for e in log_events(log_path_of(done.stderr)) if e.get("command")]
    assert [e["command"] for e in finished] == [command]
