"""The local runtime through the real CLI: configs run by ``python -m parallux`` in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import (REPO, cli_env, kill_pids, new_token, peak_overlap, pids_with_env, run_cli,
                           start_cli, wait_until, write_config)


def stdout_files(root: Path) -> list[Path]:
    return sorted(root.rglob("stdout.txt"))


def intervals(root: Path) -> list[tuple[float, float, str]]:
    """(start, end, runner) written by commands of the form ``date; sleep; date; echo $PARALLUX_RUNNER``."""
    spans = []
    for path in stdout_files(root):
        start, end, runner = path.read_text().split()
        spans.append((float(start), float(end), runner))
    return spans


TIMED = "date +%s.%N; sleep 0.3; date +%s.%N; echo $PARALLUX_RUNNER"


# -- the seed's example and the basics -------------------------------------------------------------------


def test_cli_runs_the_seed_example_on_two_runners(tmp_path: Path) -> None:
    done = run_cli(tmp_path, str(REPO / "examples" / "basic.py"))
    assert done.returncode == 0, done.stderr
    outputs = [p.read_text() for p in stdout_files(tmp_path / "parallux")]
    assert len(outputs) == 10
    assert sorted(set(outputs)) == ["runner=local-a tag=A\n", "runner=local-b tag=B\n"]


def test_cli_never_exceeds_global_and_runner_limits(tmp_path: Path) -> None:
    write_config(tmp_path, f"""
        from parallux import goal
        a = goal.local(name="a", workspace="ws", max_jobs=2)
        b = goal.local(name="b", workspace="ws", max_jobs=2)
        c = goal.local(name="c", workspace="ws", max_jobs=2)
        goal.setRunner([a, b, c])
        goal.setParallel(3)
        for i in range(15):
            goal.schd({TIMED!r})
        goal.issue().sync()
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    spans = intervals(tmp_path / "ws")
    assert len(spans) == 15
    assert peak_overlap([(s, e) for s, e, _ in spans]) == 3
    for runner in "abc":
        assert peak_overlap([(s, e) for s, e, r in spans if r == runner]) <= 2


def test_cli_runner_limit_alone_is_reached_exactly(tmp_path: Path) -> None:
    write_config(tmp_path, f"""
        from parallux import goal
        goal.setRunner(goal.local(workspace="ws", max_jobs=4))
        for i in range(12):
            goal.schd({TIMED!r})
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert peak_overlap([(s, e) for s, e, _ in intervals(tmp_path / "ws")]) == 4


def test_cli_auto_issues_and_waits_for_everything_when_the_config_returns(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        goal.run("sleep 0.3; echo immediate")
        for i in range(3):
            goal.schd(f"sleep 0.2; echo {i}", work_relpath=f"late/{i}")
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert sorted(p.read_text() for p in stdout_files(tmp_path / "ws")) == ["0\n", "1\n", "2\n", "immediate\n"]


def test_cli_handles_report_assignment_and_results(tmp_path: Path) -> None:
    write_config(tmp_path, """
        import json, os
        from parallux import goal
        local = goal.local(workspace="ws")
        goal.setRunner(local)
        handle = goal.run("echo out; echo err >&2", name="one", work_relpath="a/b")
        result = handle.sync()
        pinned = local.run(["printf", "%s|", "two words", "$HOME"]).sync()
        print(json.dumps({
            "assigned": handle.assigned(), "done": handle.done(), "runner": handle.runner_name,
            "work_dir": handle.work_dir, "stdout_path": result.stdout_path, "stderr_path": result.stderr_path,
            "command_path": result.command_path, "status": result.status, "rc": result.returncode,
            "out": result.read_stdout(), "err": result.read_stderr(), "duration_ok": result.duration >= 0,
            "pinned_out": pinned.read_stdout(), "pinned_runner": pinned.runner.name,
        }))
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    work_dir = str(tmp_path / "ws" / "a" / "b")
    assert facts == {
        "assigned": True, "done": True, "runner": "local", "work_dir": work_dir,
        "stdout_path": work_dir + "/stdout.txt", "stderr_path": work_dir + "/stderr.txt",
        "command_path": work_dir + "/command.txt", "status": "ok", "rc": 0, "out": "out\n", "err": "err\n",
        "duration_ok": True, "pinned_out": "two words|$HOME|", "pinned_runner": "local",
    }


def test_cli_writes_command_and_completion_record(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        goal.run("echo hi; exit 3", name="rec", work_relpath="r", check=False).sync()
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    work = tmp_path / "ws" / "r"
    assert work.joinpath("command.txt").read_text().splitlines()[0] == "echo hi; exit 3"
    record = json.loads(work.joinpath("result.json").read_text())
    assert record["returncode"] == 3 and record["name"] == "rec" and record["runner"] == "local"
    assert record["end"] >= record["start"] and record["wall_seconds"] >= 0
    assert {"user_seconds", "system_seconds", "max_rss_kb", "cores"} <= set(record)


def test_cli_generated_work_dirs_never_reuse_an_earlier_run(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        for i in range(3):
            goal.schd("echo $PARALLUX_WORK_RELPATH")
    """)
    assert run_cli(tmp_path, "config.py").returncode == 0
    assert run_cli(tmp_path, "config.py").returncode == 0
    outputs = [p.read_text().strip() for p in stdout_files(tmp_path / "ws")]
    assert len(outputs) == 6 and len(set(outputs)) == 6
    assert len({o.split("/")[0] for o in outputs}) == 2  # one directory per run


def test_cli_rerun_with_explicit_work_relpath_keeps_the_earlier_output(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        goal.run("echo $PARALLUX_WORK_RELPATH-$(date +%s%N)", work_relpath="fixed")
    """)
    assert run_cli(tmp_path, "config.py").returncode == 0
    first = (tmp_path / "ws" / "fixed" / "stdout.txt").read_text()
    assert run_cli(tmp_path, "config.py").returncode == 0
    assert (tmp_path / "ws" / "fixed" / ".history" / "1" / "stdout.txt").read_text() == first
    assert (tmp_path / "ws" / "fixed" / "stdout.txt").read_text() != first


def test_cli_environment_precedence_and_parallux_variables(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        r = goal.local(name="r1", workspace="ws", env={"B": "runner", "C": "runner", "D": "runner"})
        goal.setEnv("A", "goal")
        goal.setEnv("B", "goal")
        goal.setEnv("PARALLUX_RUNNER", "must be overridden")
        goal.setRunner(r)
        goal.run("echo $P0 $A $B $C $D $PARALLUX_RUNNER $PARALLUX_WORK_RELPATH $PARALLUX_WORK_DIR",
                 env={"D": "command"}, work_relpath="e")
    """)
    done = run_cli(tmp_path, "config.py", env=cli_env(tmp_path, P0="process", A="process", B="process"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ws" / "e" / "stdout.txt").read_text().split() == [
        "process", "goal", "runner", "runner", "command", "r1", "e", str(tmp_path / "ws" / "e")]


def test_cli_cwd_is_the_work_dir_unless_given(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        goal.run("pwd; touch made-here", work_relpath="default")
        goal.run("pwd", work_relpath="given", cwd="elsewhere")
    """)
    assert run_cli(tmp_path, "config.py").returncode == 0
    assert (tmp_path / "ws" / "default" / "stdout.txt").read_text().strip() == str(tmp_path / "ws" / "default")
    assert (tmp_path / "ws" / "default" / "made-here").exists()
    assert (tmp_path / "ws" / "given" / "stdout.txt").read_text().strip() == str(tmp_path / "elsewhere")


def test_cli_argv_and_args_reach_the_config(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        print(goal.argv, goal.args)
    """)
    done = run_cli(tmp_path, "config.py", "--", "case=hello", "plain", "k=a=b")
    assert done.stdout.strip() == "['case=hello', 'plain', 'k=a=b'] {'case': 'hello', 'k': 'a=b'}"
    done = run_cli(tmp_path, "config.py", "case=x")
    assert done.stdout.strip() == "['case=x'] {'case': 'x'}"


def test_cli_runs_the_config_with_young_collections_every_ten_thousand_allocations(tmp_path: Path) -> None:
    # (a run keeps most of what it allocates: at Python's 700, 100,000 commands spent twice the time in the
    # collector, see _cli.run)
    write_config(tmp_path, """
        import gc
        print(gc.get_threshold()[0], gc.isenabled())
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.stdout.split() == ["10000", "True"], done.stderr


def test_cli_config_imports_its_neighbours_and_runs_as_main(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    write_config(tmp_path / "cfg", "VALUE = 42\n", name="helper_mod.py")
    write_config(tmp_path / "cfg", """
        from parallux import goal
        import helper_mod
        print(__name__, helper_mod.VALUE, __file__)
    """)
    done = run_cli(tmp_path, "cfg/config.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["__main__", "42", str(tmp_path / "cfg" / "config.py")]


def test_cli_shebang_config_runs_directly(tmp_path: Path) -> None:
    config = write_config(tmp_path, """\
        #!/usr/bin/env parallux
        from parallux import goal
        print("args", goal.args)
    """)
    config.chmod(0o755)
    env = cli_env(tmp_path, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    done = subprocess.run([str(config), "--", "x=1"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "args {'x': '1'}"


def test_cli_plain_python_fails_at_first_use_of_goal(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        print("before")
        goal.local()
    """)
    done = subprocess.run([sys.executable, "config.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout.strip() == "before"
    assert "run this config with `parallux config.py`" in done.stderr


def test_cli_help_and_version(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "--help")
    assert done.returncode == 0 and "--dry-run" in done.stdout and "exit status" in done.stdout
    done = run_cli(tmp_path, "--version")
    assert done.returncode == 0 and done.stdout.startswith("parallux ")


def test_cli_version_names_python_and_the_main_libraries(tmp_path: Path) -> None:
    from importlib import metadata
    import platform
    lines = run_cli(tmp_path, "--version").stdout.splitlines()
    assert lines[1].startswith(f"Python {platform.python_version()} ")
    listed = dict(line.split() for line in lines[2:])
    for name in ("trio", "trio-asyncio", "asyncssh", "cryptography", "rich", "orjson", "scipy"):
        assert listed[name] == metadata.version(name)


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_cli(tmp_path).returncode == 2
    assert run_cli(tmp_path, "--no-such-option", "x.py").returncode == 2
    missing = run_cli(tmp_path, "missing.py")
    assert missing.returncode == 2 and "missing.py" in missing.stderr
    write_config(tmp_path, "def broken(:\n")
    broken = run_cli(tmp_path, "config.py")
    assert broken.returncode == 2 and "syntax error" in broken.stderr and "line 1" in broken.stderr


# -- failures and their reports ------------------------------------------------------------------------------


def test_cli_failed_check_command_exits_1_with_a_clear_report(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        goal.schd("echo fine", name="fine")
        goal.schd("echo line1 >&2; echo the-last-words >&2; exit 7", name="broken", work_relpath="b")
        goal.issue().sync()
        print("not reached")
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 1
    assert "not reached" not in done.stdout
    assert "'broken'" in done.stderr and "'local'" in done.stderr and "status 7" in done.stderr
    assert str(tmp_path / "ws" / "b") in done.stderr and "the-last-words" in done.stderr
    assert "config.py\", line 6" in done.stderr
    assert "_engine.py" not in done.stderr and "_handles.py" not in done.stderr  # no parallux internals


def test_cli_group_runs_everything_and_reports_every_failure(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal, CommandError
        goal.local(workspace="ws")
        for i in range(4):
            goal.schd(f"exit {i % 2}", name=f"c{i}")
        try:
            goal.issue().sync()
        except CommandError as exc:
            print(sorted(r.name for r in exc.results), type(exc).__name__)
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 1  # the failures were check=True, even though the config caught them
    assert done.stdout.strip() == "['c1', 'c3'] CommandFailed"
    assert len(stdout_files(tmp_path / "ws")) == 4


def test_cli_check_false_returns_the_result(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        r = goal.run("exit 5", check=False).sync()
        print(r.status, r.returncode)
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "failed 5"


def test_cli_config_exception_exits_1_and_shows_the_config_line(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        goal.run("echo started")
        raise RuntimeError("my own bug")
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 1
    assert "RuntimeError: my own bug" in done.stderr and "line 5" in done.stderr


def test_cli_config_exception_stops_running_commands(tmp_path: Path) -> None:
    token = new_token()
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws")
        handle = goal.run("sleep 1000", env={{"TOKEN": "{token}"}}, check=False)
        while not handle.assigned():
            pass
        import time; time.sleep(0.5)
        raise RuntimeError("stop")
    """)
    try:
        done = run_cli(tmp_path, "config.py")
        assert done.returncode == 1
        assert pids_with_env(token) == []
    finally:
        kill_pids(pids_with_env(token))


# -- timeouts and stopping ---------------------------------------------------------------------------------------


def test_cli_timeout_kills_the_whole_process_tree(tmp_path: Path) -> None:
    token = new_token()
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws")
        r = goal.run("sleep 1000 & sleep 1000", timeout=0.5, check=False, env={{"TOKEN": "{token}"}}).sync()
        print(r.status, r.duration is not None)
        s = goal.run("setsid sleep 1000 & wait", timeout=0.5, check=False, env={{"TOKEN": "{token}"}}).sync()
        print(s.status)
        goal.run("sleep 5", timeout=0.2, name="strict")
    """)
    try:
        started = time.monotonic()
        done = run_cli(tmp_path, "config.py")
        assert time.monotonic() - started < 20
        assert done.stdout.split() == ["timeout", "True", "timeout"]
        assert done.returncode == 1 and "'strict'" in done.stderr and "timed out" in done.stderr
        assert pids_with_env(token) == []
    finally:
        kill_pids(pids_with_env(token))


def test_cli_a_timeout_being_stopped_when_the_run_is_cancelled_stays_a_timeout(tmp_path: Path) -> None:
    # Its time ran out at 0.5 s; it ignores SIGTERM, so it is stopped only by the SIGKILL at 2.5 s. The config
    # fails at 1.2 s, which cancels the run: the command still ends as the timeout it is, the other one running
    # (no timeout) as cancelled.
    write_config(tmp_path, """
        import json, time
        from parallux import goal
        goal.local(workspace="ws")
        slow = goal.run("trap '' TERM; sleep 30 & wait; sleep 30", timeout=0.5, check=False, name="slow")
        other = goal.run("sleep 30", check=False, name="other")
        time.sleep(1.2)
        raise RuntimeError("the config fails")
    """)
    started = time.monotonic()
    done = run_cli(tmp_path, "config.py", "--log", str(tmp_path / "run.jsonl"))
    assert time.monotonic() - started < 15 and done.returncode != 0
    finished = [r for r in map(json.loads, (tmp_path / "run.jsonl").read_text().splitlines())
                if r["event"] == "finished"]
    assert sorted(r["name"] for r in finished) == ["other", "slow"], finished  # (each ends once)
    ends = {r["name"]: r for r in finished}
    assert ends["slow"]["status"] == "timeout" and ends["slow"]["signal"] == 9, ends["slow"]
    assert ends["other"]["status"] == "cancelled", ends["other"]


def running_config(tmp_path: Path, token: str) -> Path:
    return write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws", max_jobs=4)
        for i in range(8):
            goal.schd("sleep 1000 & sleep 1000", env={{"TOKEN": "{token}"}})
        goal.issue().sync()
    """)


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cli_interrupt_stops_everything_and_exits(tmp_path: Path, signum: int, status: int) -> None:
    token = new_token()
    running_config(tmp_path, token)
    process = start_cli(tmp_path, "config.py")
    try:
        assert wait_until(lambda: len(pids_with_env(token)) == 12, timeout=15)
        process.send_signal(signum)
        process.wait(timeout=10)
        assert process.returncode == status
        assert pids_with_env(token) == []
    finally:
        process.kill()
        process.communicate()
        kill_pids(pids_with_env(token))


def test_cli_sigkill_leaves_no_command_running(tmp_path: Path) -> None:
    token = new_token()
    running_config(tmp_path, token)
    process = start_cli(tmp_path, "config.py")
    try:
        assert wait_until(lambda: len(pids_with_env(token)) == 12, timeout=15)
        process.kill()
        process.wait(timeout=10)
        assert wait_until(lambda: pids_with_env(token) == [], timeout=3)
    finally:
        process.communicate()
        kill_pids(pids_with_env(token))


# -- dry run ---------------------------------------------------------------------------------------------------


def test_cli_dry_run_plans_without_running_or_creating_anything(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        a = goal.local(name="a", workspace="wsa", max_jobs=2)
        b = goal.local(name="b", workspace="wsb", max_jobs=1)
        goal.setRunner([a, b])
        for i in range(5):
            goal.schd(f"touch ../../made-{i}", name=f"c{i}", work_relpath=f"x/{i}")
        print([(r.status, r.returncode) for r in goal.issue().sync()])
    """)
    done = run_cli(tmp_path, "config.py", "--dry-run")
    assert done.returncode == 0, done.stderr
    lines = [line.split("\t") for line in done.stdout.splitlines()[:5]]
    assert [(n, r, w) for n, r, w, *_ in lines] == [
        ("c0", "a", str(tmp_path / "wsa/x/0")), ("c1", "a", str(tmp_path / "wsa/x/1")),
        ("c2", "b", str(tmp_path / "wsb/x/2")), ("c3", "a", str(tmp_path / "wsa/x/3")),
        ("c4", "a", str(tmp_path / "wsa/x/4"))]
    assert all("touch ../../made-" in line[-1] for line in lines)
    assert done.stdout.splitlines()[5] == str([("planned", None)] * 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.py"]


# -- user scheduler and status ---------------------------------------------------------------------------------


def test_cli_user_scheduler_decides_the_runner(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        a = goal.local(name="a", workspace="ws")
        b = goal.local(name="b", workspace="ws")
        goal.setRunner([a, b])
        seen = []
        def prefer_last(runners, threads):
            seen.append(([r.name for r in runners], threads))
            return runners[-1]
        goal.setScheduler(prefer_last)
        results = [goal.run("true", threads=2).sync() for _ in range(3)]
        print([r.runner_name for r in results], seen[0])
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['b', 'b', 'b'] (['a', 'b'], 2)"


def test_cli_runner_status_is_live(tmp_path: Path) -> None:
    write_config(tmp_path, """
        import time
        from parallux import goal
        r = goal.local(name="r", workspace="ws", max_jobs=3)
        goal.setRunner(r)
        idle = r.status()
        handles = [goal.run("sleep 1") for _ in range(2)]
        while r.active_jobs() < 2:
            time.sleep(0.01)
        busy = goal.runner_status()["r"]
        print(idle.active_jobs, idle.available_jobs, busy.active_jobs, busy.available_jobs,
              r.logical_core_count() == __import__("os").cpu_count(), r.configured_cores(), r.available_cores())
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 3 2 1 True [] []"


def test_cli_completion_record_says_how_the_command_ended(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        goal.run("true", work_relpath="ok", check=False)
        goal.run("exit 2", work_relpath="failed", check=False)
        goal.run("sleep 100", work_relpath="timeout", timeout=0.3, check=False)
        goal.run("true", work_relpath="error", cwd="/no/such/dir", check=False)
    """)
    assert run_cli(tmp_path, "config.py").returncode == 0
    for status in ("ok", "failed", "timeout", "error"):
        record = json.loads((tmp_path / "ws" / status / "result.json").read_text())
        assert record["status"] == status
    assert "/no/such/dir" in json.loads((tmp_path / "ws" / "error" / "result.json").read_text())["message"]
    assert (tmp_path / "ws" / "ok" / "command.txt").read_text() == "true\n# as run:\nsh -c true\n"


def test_cli_sys_exit_zero_ends_the_config_like_returning(tmp_path: Path) -> None:
    write_config(tmp_path, """
        import sys
        from parallux import goal
        goal.local(workspace="ws")
        goal.run("sleep 0.3; echo finished", work_relpath="w")
        sys.exit(0)
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ws" / "w" / "stdout.txt").read_text() == "finished\n"
    write_config(tmp_path, "import sys\nsys.exit(3)\n")
    assert run_cli(tmp_path, "config.py").returncode == 3


def test_cli_sys_exit_with_a_message_prints_it_and_stops_the_run(tmp_path: Path) -> None:
    write_config(tmp_path, """
        import os, sys, time
        from parallux import goal
        goal.local(workspace="ws")
        goal.run("touch ../started; sleep 30; touch ../../finished", work_relpath="running")
        goal.schd("touch ../../queued", work_relpath="queued")
        while not os.path.exists("ws/started"):
            time.sleep(0.01)
        sys.exit("no inputs found: giving up")
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 1, done.stderr
    assert "\nno inputs found: giving up\n" in "\n" + done.stderr  # on a line of its own, as Python prints it
    assert "Traceback" not in done.stderr and "SystemExit" not in done.stderr
    assert "the config called sys.exit(); 2 commands not finished were stopped or never started" in done.stderr
    assert not (tmp_path / "finished").exists() and not (tmp_path / "queued").exists()
    assert json.loads((tmp_path / "ws" / "running" / "result.json").read_text())["status"] == "cancelled"


def test_cli_sys_exit_status_is_the_exit_status(tmp_path: Path) -> None:
    write_config(tmp_path, """
        import sys
        from parallux import goal
        goal.local(workspace="ws")
        goal.run("sleep 30", work_relpath="running")
        sys.exit(3)
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 3, done.stderr
    assert "1 command not finished was stopped or never started" in done.stderr


def test_cli_error_in_a_scheduler_function_points_at_it(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        def pick(runners, threads):
            return runners[5]
        goal.setScheduler(pick)
        goal.run("true").sync()
    """)
    done = run_cli(tmp_path, "config.py", timeout=30)
    assert done.returncode == 1
    assert "line 5, in pick" in done.stderr and "IndexError" in done.stderr and "setScheduler" in done.stderr


def test_cli_dry_run_engine_does_not_spin_while_the_config_works(tmp_path: Path) -> None:
    # A dry run's virtual clock jumps when the engine is idle; with nothing to jump to, an engine that polled
    # without sleeping would burn a CPU and starve the config's own thread (a config importing asyncssh for
    # goal.ssh took over a minute). Half a second of config time must cost the process far less CPU.
    write_config(tmp_path, """
        import time
        from parallux import goal
        goal.local(workspace="ws")
        started = time.process_time()
        time.sleep(0.5)
        print(f"{time.process_time() - started:.3f}")
    """)
    done = run_cli(tmp_path, "config.py", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split()[-1]) < 0.2


def test_cli_dry_run_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        for i in range(2000):
            goal.schd(f"echo {i}")
    """)
    shell = f"{sys.executable} -m parallux config.py --dry-run | head -1"
    done = subprocess.run(["sh", "-c", shell], cwd=tmp_path, env=cli_env(tmp_path), capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.startswith("job1\t") and len(done.stdout.splitlines()) == 1
    assert "Traceback" not in done.stderr and "stopped unexpectedly" not in done.stderr


def test_cli_notes_runners_left_out_of_the_pool(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(name="fast", workspace="ws")
        print(goal.run("echo $PARALLUX_RUNNER").sync().read_stdout().strip())
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.stdout.strip() == "local"
    assert "setRunner() was not called" in done.stderr and "'fast'" in done.stderr


def test_cli_environment_changed_by_the_config_reaches_local_commands(tmp_path: Path) -> None:
    # The CLI starts a launcher before the config runs; a config that changes os.environ first must still
    # give its commands the environment it set up (the early launcher is then not used).
    write_config(tmp_path, """
        import os
        from parallux import goal
        os.environ["SET_BY_CONFIG"] = "yes"
        goal.local(workspace="ws")
        print(goal.run("echo $SET_BY_CONFIG").sync().read_stdout().strip())
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "yes"


def test_cli_sync_of_a_command_never_issued_is_an_error_not_a_hang(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        goal.schd("true", name="forgotten").sync()
    """)
    done = run_cli(tmp_path, "config.py", timeout=30)
    assert done.returncode == 2 and "never issued" in done.stderr and "'forgotten'" in done.stderr


def test_cli_scheduler_function_that_waits_is_asked_again(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        calls = []
        def hesitant(runners, threads):
            calls.append(1)
            return None if len(calls) < 3 else runners[0]
        goal.setScheduler(hesitant)
        print(goal.run("echo ran").sync().read_stdout().strip(), len(calls))
    """)
    done = run_cli(tmp_path, "config.py", timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ran 3"


def test_cli_commands_of_a_launcher_that_died_are_stopped(tmp_path: Path) -> None:
    token = new_token()
    write_config(tmp_path, f"""
        import os, signal, time
        from parallux import goal
        r = goal.local(workspace="ws")
        h = goal.run("sleep 1000", env={{"TOKEN": "{token}"}}, check=False)
        while not h.assigned():
            time.sleep(0.01)
        time.sleep(0.3)
        os.kill(r.facts["pid"], signal.SIGKILL)  # the launcher dies unasked
        print(h.sync().status)
    """)
    try:
        done = run_cli(tmp_path, "config.py", timeout=30)
        assert done.stdout.strip() == "error"
        assert wait_until(lambda: pids_with_env(token) == [], timeout=3)
    finally:
        kill_pids(pids_with_env(token))
