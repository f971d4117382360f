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


# -- quarantine ----------------------------------------------------------------------------------------------

def test_runner_that_cannot_execute_is_quarantined_and_the_others_finish_the_queue(tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    bench.write_text("#!/bin/sh\necho ran\n")  # no executable bit: "Permission denied", exit 126
    good = tmp_path / "good"
    good.write_text("#!/bin/sh\necho ran\n")
    good.chmod(0o755)
    write_config(tmp_path, f"""
        from parallux import goal
        broken = goal.local(name="broken", workspace="ws", max_jobs=1, env={{"BENCH": "{bench}"}})
        fine = goal.local(name="fine", workspace="ws", max_jobs=2, env={{"BENCH": "{good}"}})
        goal.setRunner([broken, fine])
        for i in range(40):
            goal.schd('"$BENCH"', name=f"c{{i}}", check=False)
        results = goal.issue().sync()
        print(sum(r.status == "ok" for r in results), sum(r.runner_name == "broken" for r in results))
        print(goal.runner_status("broken").quarantined)
        pinned = broken.run("true", check=False).sync()
        print(pinned.status, pinned.error)
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    counts, why, pinned = done.stdout.splitlines()
    assert counts == "35 5"  # 5 could not execute on broken, then fine ran all the rest
    assert "5 commands in a row could not be executed" in why
    assert pinned.startswith("error ") and "taken out of the pool" in pinned
    notices = [line for line in done.stderr.splitlines() if "its queued commands go to" in line]
    assert len(notices) == 1, done.stderr
    assert "runner 'broken'" in notices[0] and "Permission denied" in notices[0] and "exit 126" in notices[0]
    assert "runner broken: 5 runs (5 failed)" in done.stderr  # (the pinned one never reached it)
    assert "taken out of the pool" in done.stderr.split("runner broken:")[1].splitlines()[0]
    assert "runner fine: 35 runs (35 ok)" in done.stderr
    assert "5 x failed (exit 126) on broken:" in done.stderr  # failures grouped by cause
    # as they happen: the first 3 of the cause in full, then a note, the rest counted; and the pinned one
    assert done.stderr.count("parallux: FAILED command") == 3 + 1
    assert done.stderr.count("are counted in the summary, not shown") == 1


def test_quarantined_runners_failures_are_retried_elsewhere(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        broken = goal.local(name="broken", workspace="ws", max_jobs=1, env={"PATH": "/nonexistent"})
        fine = goal.local(name="fine", workspace="ws", max_jobs=1)
        goal.setRunner([broken, fine])
        goal.setRetries(5)  # enough that no command can spend every attempt on broken
        results = [goal.run("ls /", check=False) for _ in range(8)]
        results = [h.sync() for h in results]
        print(sorted({r.status for r in results}), sum(len(r.attempts) for r in results))
        print([a["runner"] for r in results for a in r.attempts if a["status"] != "ok"].count("broken"))
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    statuses, broken_attempts = done.stdout.splitlines()
    assert statuses.startswith("['ok']")  # every command ended ok, on fine, after broken was set aside
    assert broken_attempts == "5"


def test_a_retry_after_a_command_could_not_execute_goes_to_another_runner(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        broken = goal.local(name="broken", workspace="ws", max_jobs=4, env={"PATH": "/nonexistent"})
        fine = goal.local(name="fine", workspace="ws", max_jobs=4)
        goal.setRunner([broken, fine])
        results = [goal.run("ls /", retries=1, check=False) for _ in range(4)]
        print(" ".join("/".join(a["runner"] for a in h.sync().attempts) for h in results))
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["broken/fine"] * 4


# -- retry_on, provenance ------------------------------------------------------------------------------------

def test_retry_on_chooses_the_outcomes_that_are_retried(tmp_path: Path) -> None:
    write_config(tmp_path, """
        import json
        from parallux import goal
        goal.local(workspace="ws")
        hang = goal.run("sleep 30", timeout=0.3, retries=2, retry_on=["failed"], check=False)
        three = goal.run("exit 3", retries=2, retry_on={3}, check=False)
        four = goal.run("exit 4", retries=2, retry_on={3}, check=False)
        goal.setRetries(1, retry_on=["timeout"])
        later = goal.run("sleep 30", timeout=0.3, check=False)
        failing = goal.run("exit 1", check=False)
        for h in (hang, three, four, later, failing):
            r = h.sync()
            print(r.status, len(r.attempts), r.run_id == goal._run_id,
                  json.dumps([[a["status"], a["returncode"]] for a in r.attempts]))
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    lines = [line.split(" ", 3) for line in done.stdout.splitlines()]
    assert [line[:3] for line in lines] == [
        ["timeout", "1", "True"], ["failed", "3", "True"], ["failed", "1", "True"],
        ["timeout", "2", "True"], ["failed", "1", "True"]]
    assert json.loads(lines[1][3]) == [["failed", 3]] * 3


def test_retry_on_refuses_what_cannot_be_retried(tmp_path: Path) -> None:
    for bad, phrase in [('["cancelled"]', "'cancelled' is not a status that can be retried"),
                        ("[True]", "neither a status"), ("[0]", "out of range"), ('"sometimes"', "not a status")]:
        write_config(tmp_path, f"""
            from parallux import goal
            goal.run("true", retry_on={bad})
        """)
        done = run_cli(tmp_path, "config.py")
        assert done.returncode == 2 and phrase in done.stderr, (bad, done.stderr)


# -- inputs= and --resume -----------------------------------------------------------------------------------

def test_resume_reruns_exactly_the_commands_whose_inputs_changed(tmp_path: Path) -> None:
    prog = tmp_path / "prog"
    prog.write_text("v1")
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "trace").write_text("t1")
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws")
        handles = [goal.run("true", work_relpath=f"p{{i}}", inputs=["{prog}"]) for i in range(2)]
        handles += [goal.run("true", work_relpath=f"d{{i}}", inputs=["{data}"]) for i in range(2)]
        handles += [goal.run("true", work_relpath="plain")]
        print(" ".join(("resumed" if r.resumed else "ran") + ":" + r.run_id for r in (h.sync() for h in handles)))
    """)
    first = run_cli(tmp_path, "config.py")
    assert first.returncode == 0, first.stderr
    first_run = first.stdout.split()[0].split(":")[1]

    os.utime(prog, ns=(prog.stat().st_atime_ns, prog.stat().st_mtime_ns + 10**9))  # rebuilt
    second = run_cli(tmp_path, "config.py", "--resume")
    assert second.returncode == 0, second.stderr
    states = [item.split(":") for item in second.stdout.split()]
    assert [s for s, _ in states] == ["ran", "ran", "resumed", "resumed", "resumed"]
    assert [run for _, run in states][2:] == [first_run] * 3  # provenance: the run that produced the record
    assert "rerun: 2 commands done in an earlier run whose inputs changed since" in second.stderr
    assert "resumed: 3 commands skipped, already done in an earlier run (local: 3)" in second.stderr

    (data / "sub" / "trace").write_text("t2, longer")  # data changed deep inside the directory
    third = run_cli(tmp_path, "config.py", "--resume")
    assert [item.split(":")[0] for item in third.stdout.split()] == ["resumed", "resumed", "ran", "ran", "resumed"]


def test_inputs_must_exist(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.run("true", inputs=["no-such-binary"])
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2
    assert "inputs: no such file or directory: 'no-such-binary'" in done.stderr
