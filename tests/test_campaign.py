"""A campaign that cannot go silently wrong (SPEC 11), through the real CLI: work dir locks, runner quarantine,
retry_on, provenance, inputs= fingerprints, SIGHUP."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from tests.helpers import kill_pids, new_token, pids_with_env, run_cli, start_cli, wait_until, write_config


def records(workspace: Path, name: str = "result.json") -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(workspace.glob(f"*/{name}"))}


# -- work dir locks ------------------------------------------------------------------------------------------

def test_overlapping_runs_never_mix_files_in_one_work_dir(tmp_path: Path) -> None:
    write_config(tmp_path, """
        import sys
        from parallux import goal
        goal.local(workspace="ws", max_jobs=3)
        tag = goal.args["tag"]
        for i in range(3):
            goal.schd(f"sleep {goal.args['sleep']}; echo {tag}", work_relpath=f"w{i}", check=False)
        results = goal.issue().sync()
        print(" ".join(r.status for r in results))
        print(results[0].error)
    """)
    first = start_cli(tmp_path, "config.py", "--", "tag=first", "sleep=4")
    try:
        assert wait_until(lambda: len(list((tmp_path / "ws").glob("w*/.parallux-lock"))) == 3, timeout=15)
        second = run_cli(tmp_path, "config.py", "--", "tag=second", "sleep=0")
        out, err = first.communicate(timeout=30)
    finally:
        first.kill()
    assert first.returncode == 0, err
    assert out.split()[:3] == ["ok", "ok", "ok"]
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[0] == "error error error"
    first_run = records(tmp_path / "ws")["w0"]["run_id"]
    assert f"in use by run {first_run}" in second.stdout.splitlines()[1]
    for work in sorted((tmp_path / "ws").glob("w*")):  # the first run's files, whole and alone
        assert (work / "stdout.txt").read_text() == "first\n"
        assert json.loads((work / "result.json").read_text())["run_id"] == first_run
        assert not (work / ".history").exists()
        assert not (work / ".parallux-lock").exists()  # released at the end of the first run


def test_a_stale_lock_of_a_killed_run_is_taken_over(tmp_path: Path) -> None:
    """parallux and its launcher both killed: nobody released the lock, and its holder is gone."""
    token = new_token()
    write_config(tmp_path, f"""
        from parallux import goal
        r = goal.local(workspace="ws")
        h = goal.run("sleep {{}}".format(goal.args["sleep"]), work_relpath="w", env={{"T": "{token}"}})
        print(r.facts["pid"], flush=True)
        h.sync()
    """)
    killed = start_cli(tmp_path, "config.py", "--", "sleep=100")
    try:
        launcher = int(killed.stdout.readline())  # type: ignore[union-attr]
        assert wait_until(lambda: pids_with_env(token) != [], timeout=15)
        os.kill(launcher, signal.SIGKILL)
        os.kill(killed.pid, signal.SIGKILL)
        killed.communicate(timeout=10)
        assert wait_until(lambda: pids_with_env(token) == [], timeout=5)
        lock = tmp_path / "ws" / "w" / ".parallux-lock"
        assert json.loads(lock.read_text())["pid"] == launcher
        again = run_cli(tmp_path, "config.py", "--", "sleep=0")
    finally:
        kill_pids(pids_with_env(token))
    assert again.returncode == 0, again.stderr
    assert records(tmp_path / "ws")["w"]["status"] == "ok"
    assert not lock.exists()


# -- SIGHUP --------------------------------------------------------------------------------------------------

def log_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_complete_log(log: Path, running: int) -> None:
    events = log_events(log)
    started = {e["seq"] for e in events if e["event"] == "started"}
    finished = {e["seq"]: e["status"] for e in events if e["event"] == "finished"}
    assert len(started) == running and set(finished) >= started, events
    assert {finished[seq] for seq in started} == {"cancelled"}
    assert events[-1]["event"] == "run_finished" and events[-1]["exit_status"] == 129


def hup_config(tmp_path: Path, token: str) -> None:
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws", max_jobs=3)
        for i in range(6):
            goal.schd("exec sleep 1000", env={{"T": "{token}"}})
        goal.issue().sync()
    """)


def test_sighup_stops_everything_and_completes_the_run_log(tmp_path: Path) -> None:
    token = new_token()
    hup_config(tmp_path, token)
    process = start_cli(tmp_path, "config.py", "--log", "run.jsonl")
    try:
        assert wait_until(lambda: len(pids_with_env(token)) == 3, timeout=15)
        process.send_signal(signal.SIGHUP)
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
        kill_pids(pids_with_env(token))
    assert process.returncode == 129, stderr
    assert "hung up" in stderr
    assert wait_until(lambda: pids_with_env(token) == [], timeout=3)
    check_complete_log(tmp_path / "run.jsonl", running=3)


def test_closed_terminal_stops_everything_and_completes_the_run_log(tmp_path: Path) -> None:
    """The real thing: parallux on a terminal (live display), and the terminal goes away."""
    import sys

    from ptyprocess import PtyProcess

    token = new_token()
    hup_config(tmp_path, token)
    env = {**os.environ, "HOME": str(tmp_path), "TERM": "xterm"}
    env.pop("PYTHONPATH", None)
    terminal = PtyProcess.spawn([sys.executable, "-m", "parallux", "config.py", "--log", "run.jsonl"],
                                cwd=str(tmp_path), env=env, dimensions=(40, 120))
    try:
        assert wait_until(lambda: len(pids_with_env(token)) == 3, timeout=15)
        terminal.read(4096)  # the live display is drawing
        os.close(terminal.fd)  # hang up: the kernel sends SIGHUP to the session's leader, parallux
        terminal.fd = -1
        deadline = time.monotonic() + 20
        while terminal.isalive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not terminal.isalive()
        assert terminal.exitstatus == 129
    finally:
        if terminal.isalive():
            terminal.kill(signal.SIGKILL)
        kill_pids(pids_with_env(token))
    assert wait_until(lambda: pids_with_env(token) == [], timeout=3)
    check_complete_log(tmp_path / "run.jsonl", running=3)
