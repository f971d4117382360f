"""The launcher as a real subprocess: the JSON-lines protocol, the files it writes, and the process trees it kills.

Every test starts its own launcher with ``python -I -S _launcher.py`` and speaks the protocol over pipes. Each
command carries a fresh ``PARALLUX_JOB_MARK``, so the tests find (and, at teardown, stop) exactly the processes
they started by reading ``/proc/<pid>/environ`` -- never by name.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from parallux import _launcher
from tests.launcher_client import EVENT_TIMEOUT, LAUNCHER, LauncherClient, all_pids, is_live, marked_pids, proc_stat, sh

T = TypeVar("T")


# --- /proc -----------------------------------------------------------------------------------------------------


def live_group_members(pgid: int) -> list[int]:
    return [pid for pid in all_pids() if (s := proc_stat(pid)) is not None and s.pgrp == pgid and is_live(pid)]


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def wait_until(check: Callable[[], T], what: str, timeout: float = EVENT_TIMEOUT) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def assert_tree_gone(pgid: int, mark: str, timeout: float = 1.0) -> None:
    """Nothing of the tree runs: not in the group, and nothing carrying the mark (a setsid escapee)."""
    wait_until(lambda: not live_group_members(pgid) and not marked_pids(mark), f"group {pgid} and {mark} gone",
               timeout)


# --- a protocol client -----------------------------------------------------------------------------------------


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[LauncherClient]:
    client = LauncherClient(tmp_path)
    try:
        yield client
    finally:
        client.shut_down()


def python(code: str) -> list[str]:
    return [sys.executable, "-I", "-S", "-c", code]


# --- hello, ping, quit ---------------------------------------------------------------------------------------


def test_launcher_hello_reports_machine_facts(launcher: LauncherClient, tmp_path: Path) -> None:
    launcher.send(op="hello")
    hello = launcher.expect("hello")

    assert hello["protocol"] == _launcher.PROTOCOL_VERSION == 1
    assert hello["logical_cores"] == os.cpu_count()
    assert hello["home"] == os.path.expanduser("~")
    assert hello["cwd"] == str(tmp_path)
    assert "numactl" in hello
    assert hello["numactl"] == shutil.which("numactl")
    assert hello["guardian"] == launcher.pid  # the process started stays as the launcher's guardian
    assert proc_stat(hello["pid"]).ppid == launcher.pid


def test_launcher_ping_answers_pong(launcher: LauncherClient) -> None:
    before = time.time()
    launcher.send(op="ping")
    pong = launcher.expect("pong")
    assert before <= pong["t"] <= time.time()


def test_launcher_unknown_op_is_an_error_and_serving_goes_on(launcher: LauncherClient) -> None:
    launcher.send(op="frobnicate", id=3)
    error = launcher.expect("error", 3)
    assert "frobnicate" in error["message"]
    launcher.send(op="ping")
    launcher.expect("pong")


def test_launcher_quit_stops_commands_and_exits_zero(launcher: LauncherClient, tmp_path: Path) -> None:
    started = launcher.start(1, ["sleep", "1000"], tmp_path / "w")
    wait_until(lambda: marked_pids(started["mark"]), "the sleep to start")

    launcher.send(op="quit")

    assert launcher.wait(timeout=3.5) == 0
    assert_tree_gone(started["pid"], started["mark"])


def test_launcher_ignores_sigint(launcher: LauncherClient, tmp_path: Path) -> None:
    launcher.send(op="ping")
    launcher.expect("pong")  # the launcher is past start-up and has its handlers installed

    os.kill(launcher.pid, signal.SIGINT)
    os.kill(launcher.serving_pid(), signal.SIGINT)

    launcher.send(op="ping")
    launcher.expect("pong")
    assert launcher.run(1, ["true"], tmp_path / "w")["returncode"] == 0
    assert launcher.proc.poll() is None


def test_launcher_commands_do_not_inherit_ignored_sigint(launcher: LauncherClient, tmp_path: Path) -> None:
    """The launcher ignores SIGINT for itself; a command must still see SIGINT's default action."""
    work = tmp_path / "w"
    exit_event = launcher.run(1, sh("grep SigIgn /proc/self/status"), work)

    assert exit_event["returncode"] == 0
    ignored = int((work / "stdout.txt").read_text().split()[1], 16)
    assert not ignored & (1 << (signal.SIGINT - 1))


# --- running and measuring -----------------------------------------------------------------------------------


def test_launcher_run_reports_started_and_exit_with_costs(launcher: LauncherClient, tmp_path: Path) -> None:
    burn = ("import os\n"
            "b = b'x' * (64 << 20)\n"  # written, so resident: max_rss_kb must show it
            "t = os.times().user\n"
            "while os.times().user - t < 0.2: pass\n"
            "raise SystemExit(3)\n")
    before = time.time()
    started = launcher.start(5, python(burn), tmp_path / "w")
    exit_event = launcher.expect("exit", 5)

    assert started["ev"] == "started" and started["id"] == 5
    assert isinstance(started["pid"], int) and before <= started["start"] <= time.time()
    assert exit_event["pid"] == started["pid"]
    assert exit_event["returncode"] == 3
    assert exit_event["signal"] is None and exit_event["killed"] is False
    assert exit_event["start"] == started["start"] <= exit_event["end"]
    assert exit_event["user_seconds"] >= 0.15
    assert exit_event["system_seconds"] >= 0.0
    assert exit_event["wall_seconds"] >= exit_event["user_seconds"] * 0.9
    assert exit_event["max_rss_kb"] >= 64 * 1024


def test_launcher_run_writes_command_outputs_and_record(launcher: LauncherClient, tmp_path: Path) -> None:
    work = tmp_path / "w"
    script = "echo out; echo err >&2; exit 4"
    exit_event = launcher.run(1, sh(script), work, command_text=script, wrapped="numactl -C 0 sh -c '...'",
                              record={"name": "job-a", "tags": ["x", "y"]})

    assert (work / "command.txt").read_text() == f"{script}\n# as run:\nnumactl -C 0 sh -c '...'\n"
    assert (work / "stdout.txt").read_text() == "out\n"
    assert (work / "stderr.txt").read_text() == "err\n"
    record = json.loads((work / "result.json").read_text())
    assert record["returncode"] == 4 == exit_event["returncode"]
    assert record["command"] == script
    assert record["wrapped"] == "numactl -C 0 sh -c '...'"
    assert record["name"] == "job-a" and record["tags"] == ["x", "y"]
    assert record["wall_seconds"] == exit_event["wall_seconds"]
    assert sorted(p.name for p in work.iterdir()) == ["command.txt", "result.json", "stderr.txt", "stdout.txt"]


def test_launcher_records_answers_for_many_work_dirs_at_once(launcher: LauncherClient, tmp_path: Path) -> None:
    done = tmp_path / "done"
    launcher.run(1, sh("exit 0"), done, command_text="exit 0")
    broken, not_a_record, empty_dir, deep = (tmp_path / name for name in ("broken", "list", "empty", "deep"))
    for path in (broken, not_a_record, empty_dir, deep):
        path.mkdir()
    (broken / "result.json").write_text('{"returncode": 0, "comm')
    (not_a_record / "result.json").write_text("[0]")
    (deep / "result.json").write_text("[" * 100_000)  # the JSON scanner's RecursionError, not a dead launcher
    paths = [str(d / "result.json") for d in (done, broken, tmp_path / "missing", not_a_record, empty_dir, deep)]

    launcher.send(op="records", id=7, paths=paths)
    records = launcher.expect("records", 7)["records"]

    assert records[0] == json.loads((done / "result.json").read_text())
    assert records[0]["command"] == "exit 0" and records[0]["returncode"] == 0
    assert records[1:] == [None, None, None, None, None]
    launcher.send(op="ping")
    launcher.expect("pong")


def test_launcher_quotes_the_as_run_line_of_its_argv_itself(launcher: LauncherClient, tmp_path: Path) -> None:
    """parallux sends no "wrapped" line (quoting is the launcher's work, off the engine's loop): command.txt
    and the record still keep the exact line as run, shell-quoted; a request's own "wrapped" wins."""
    work = tmp_path / "w"
    launcher.run(1, ["sh", "-c", "echo 'a b' > x"], work, command_text="echo 'a b' > x")
    assert (work / "command.txt").read_text() == "echo 'a b' > x\n# as run:\nsh -c 'echo '\"'\"'a b'\"'\"' > x'\n"
    assert json.loads((work / "result.json").read_text())["wrapped"] == "sh -c 'echo '\"'\"'a b'\"'\"' > x'"
    given = tmp_path / "given"
    launcher.run(2, ["true"], given, command_text="true", wrapped="numactl -- true")
    assert (given / "command.txt").read_text() == "true\n# as run:\nnumactl -- true\n"


def test_launcher_env_additions_shlvl_and_mark(tmp_path: Path) -> None:
    env = dict(os.environ, SHLVL="6", FROM_PARENT="kept")
    client = LauncherClient(tmp_path, env=env)
    try:
        work = tmp_path / "w"
        dump = "import json, os; print(json.dumps(dict(os.environ)))"
        started = client.start(1, python(dump), work, env={"ADDED": "a b=c", "SHLVL": "9"})
        client.expect("exit", 1)
    finally:
        client.shut_down()

    seen = json.loads((work / "stdout.txt").read_text())
    assert seen["ADDED"] == "a b=c"
    assert seen["FROM_PARENT"] == "kept"
    assert seen["SHLVL"] == "1"
    assert seen["PARALLUX_JOB_MARK"] == started["mark"]


def test_launcher_cwd_option_and_work_dir_default(launcher: LauncherClient, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    launcher.run(1, ["pwd"], tmp_path / "a", cwd=str(elsewhere))
    launcher.run(2, ["pwd"], tmp_path / "b")

    assert (tmp_path / "a" / "stdout.txt").read_text() == f"{elsewhere}\n"
    assert (tmp_path / "b" / "stdout.txt").read_text() == f"{tmp_path / 'b'}\n"
    assert not (elsewhere / "stdout.txt").exists()


@pytest.mark.parametrize(("argv", "cwd", "named"), [
    (["true"], "/nonexistent/cwd", "/nonexistent/cwd"),
    (["/nonexistent/program"], None, "/nonexistent/program"),
])
def test_launcher_launch_error_is_reported_and_serving_goes_on(launcher: LauncherClient, tmp_path: Path,
                                                               argv: list[str], cwd: str | None,
                                                               named: str) -> None:
    launcher.send(op="run", id=1, argv=argv, cwd=cwd, work_dir=str(tmp_path / "bad"), command_text="x")
    error = launcher.expect(("error", "started"), 1)

    assert error["ev"] == "error"
    assert named in error["message"]
    assert launcher.run(2, ["sh", "-c", "exit 7"], tmp_path / "good")["returncode"] == 7
    assert launcher.proc.poll() is None


def test_launcher_rerun_moves_earlier_files_into_history(launcher: LauncherClient, tmp_path: Path) -> None:
    work = tmp_path / "w"
    for n in (1, 2, 3):
        launcher.run(n, sh(f"echo run{n}; echo e{n} >&2"), work, command_text=f"run {n}")

    history = work / ".history"
    assert sorted(p.name for p in history.iterdir()) == ["1", "2"]
    for n in (1, 2):
        kept = history / str(n)
        assert (kept / "stdout.txt").read_text() == f"run{n}\n"
        assert (kept / "stderr.txt").read_text() == f"e{n}\n"
        assert (kept / "command.txt").read_text().startswith(f"run {n}\n# as run:\n")
        assert json.loads((kept / "result.json").read_text())["command"] == f"run {n}"
    assert (work / "stdout.txt").read_text() == "run3\n"
    assert json.loads((work / "result.json").read_text())["command"] == "run 3"


# --- reaping ---------------------------------------------------------------------------------------------------


def test_launcher_reaps_many_quick_commands(launcher: LauncherClient, tmp_path: Path) -> None:
    count = 200
    for n in range(count):
        launcher.send(op="run", id=n, argv=sh(f"exit {n % 256}"), work_dir=str(tmp_path / "jobs" / str(n)),
                      command_text=f"exit {n}")
    pids = {n: launcher.expect("started", n)["pid"] for n in range(count)}
    exits = {n: launcher.expect("exit", n)["returncode"] for n in range(count)}
    server = launcher.serving_pid()

    assert exits == {n: n % 256 for n in range(count)}
    assert [pid for pid in pids.values() if proc_stat(pid) is not None] == []
    assert [pid for pid in all_pids() if (s := proc_stat(pid)) is not None and s.ppid == server] == []


def test_launcher_reports_signal_death(launcher: LauncherClient, tmp_path: Path) -> None:
    exit_event = launcher.run(1, sh("kill -9 $$"), tmp_path / "w")

    assert exit_event["returncode"] == -9
    assert exit_event["signal"] == 9
    assert exit_event["killed"] is False
    record = json.loads((tmp_path / "w" / "result.json").read_text())
    assert record["returncode"] == -9 and record["signal"] == 9


# --- killing ---------------------------------------------------------------------------------------------------


def start_and_settle(launcher: LauncherClient, job_id: int, script: str, work_dir: Path,
                     ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Start a shell script and wait until its tree is in the state ``ready`` looks for."""
    started = launcher.start(job_id, sh(script), work_dir)
    wait_until(lambda: ready(started), f"job {job_id} to settle")
    return started


def sleeps_running(count: int) -> Callable[[dict[str, Any]], bool]:
    return lambda job: sum(command_name(p) == "sleep" for p in marked_pids(job["mark"])) >= count


def test_launcher_kill_stops_the_whole_process_group(launcher: LauncherClient, tmp_path: Path) -> None:
    job = start_and_settle(launcher, 1, "sleep 1000 & sleep 1000", tmp_path / "w", sleeps_running(2))
    assert len(live_group_members(job["pid"])) >= 2

    launcher.send(op="kill", id=1, grace=1.0)
    exit_event = launcher.expect("exit", 1)

    assert exit_event["killed"] is True
    assert exit_event["signal"] == signal.SIGTERM
    assert exit_event["returncode"] == -signal.SIGTERM
    assert_tree_gone(job["pid"], job["mark"])


def test_launcher_kill_reports_exit_once_the_tree_is_gone(launcher: LauncherClient, tmp_path: Path) -> None:
    """The grace is an upper bound: a tree that dies of TERM at once is reported at once, not after the grace."""
    job = start_and_settle(launcher, 1, "sleep 1000 & sleep 1000", tmp_path / "w", sleeps_running(2))

    sent = time.monotonic()
    launcher.send(op="kill", id=1, grace=10.0)
    exit_event = launcher.expect("exit", 1)

    assert time.monotonic() - sent < 1.5
    assert exit_event["signal"] == signal.SIGTERM
    assert not live_group_members(job["pid"]) and not marked_pids(job["mark"])


def test_launcher_kill_escalates_to_sigkill_after_grace(launcher: LauncherClient, tmp_path: Path) -> None:
    job = start_and_settle(launcher, 1, "trap '' TERM; sleep 1000", tmp_path / "w", sleeps_running(1))

    sent = time.monotonic()
    launcher.send(op="kill", id=1, grace=0.5)
    exit_event = launcher.expect("exit", 1)

    assert time.monotonic() - sent >= 0.5
    assert exit_event["killed"] is True
    assert exit_event["signal"] == signal.SIGKILL
    assert exit_event["returncode"] == -signal.SIGKILL
    assert_tree_gone(job["pid"], job["mark"])


def test_launcher_kill_finds_setsid_grandchild_by_mark(launcher: LauncherClient, tmp_path: Path) -> None:
    def escaped(job: dict[str, Any]) -> list[int]:
        return [p for p in marked_pids(job["mark"])
                if (s := proc_stat(p)) is not None and s.session != job["pid"] and command_name(p) == "sleep"]

    job = start_and_settle(launcher, 1, "setsid sleep 1000 & wait", tmp_path / "w", escaped)
    [escapee] = escaped(job)

    launcher.send(op="kill", id=1, grace=1.0)
    launcher.expect("exit", 1)

    assert_tree_gone(job["pid"], job["mark"])
    assert not is_live(escapee)


def test_launcher_without_cgroups_waits_for_an_escapee_that_ignores_sigterm(tmp_path: Path) -> None:
    """Without cgroups, a stopped command whose setsid'd child ignores SIGTERM (and has been adopted by the
    launcher, its shell gone) is not over until that child is found by its mark and killed: its exit comes
    only after the grace, with nothing of it left. (The launcher scans for marks only when it has adopted a
    process, which this one is.)"""
    client = LauncherClient(tmp_path, env=dict(os.environ, PARALLUX_CGROUPS="0"))
    try:
        script = "setsid sh -c \"trap '' TERM; exec sleep 1000\" </dev/null >/dev/null 2>&1 & sleep 1000"
        job = start_and_settle(client, 1, script, tmp_path / "w", sleeps_running(2))
        sent = time.monotonic()
        client.send(op="kill", id=1, grace=0.5)
        exit_event = client.expect("exit", 1)
        assert time.monotonic() - sent >= 0.5
        assert marked_pids(job["mark"]) == []
        assert exit_event["killed"] is True
    finally:
        client.shut_down()


def test_launcher_stdin_eof_stops_every_group_and_exits_zero(launcher: LauncherClient, tmp_path: Path) -> None:
    """Closing stdin stands for the client dying, even by SIGKILL: the launcher must clean up on its own."""
    jobs = [start_and_settle(launcher, 1, "sleep 1000 & sleep 1000", tmp_path / "a", sleeps_running(2)),
            start_and_settle(launcher, 2, "trap '' TERM; sleep 1000", tmp_path / "b", sleeps_running(1)),
            start_and_settle(launcher, 3, "setsid sleep 1000 & wait", tmp_path / "c", sleeps_running(1))]
    leftover = launcher.start(4, sh("sleep 1000 &"), tmp_path / "d")  # ends at once, its background sleep not
    assert launcher.expect("exit", 4)["returncode"] == 0
    assert live_group_members(leftover["pid"])
    jobs.append(leftover)

    closed = time.monotonic()
    launcher.close_stdin()

    assert launcher.wait(timeout=3.5) == 0
    for job in jobs:
        assert_tree_gone(job["pid"], job["mark"], timeout=max(0.0, closed + 3.5 - time.monotonic()))


def test_launcher_stdin_eof_kills_a_finished_commands_escapee_that_ignores_sigterm(launcher: LauncherClient,
                                                                                   tmp_path: Path) -> None:
    """After every command ended, only the run-wide sweep by mark finds a setsid'd leftover: one that ignores
    SIGTERM must still get SIGKILL after the grace (the usual, clean end skips the grace)."""
    script = "setsid sh -c \"trap '' TERM; exec sleep 1000\" </dev/null >/dev/null 2>&1 & exit 0"
    job = launcher.start(1, sh(script), tmp_path / "w")
    assert launcher.expect("exit", 1)["returncode"] == 0
    wait_until(lambda: sleeps_running(1)(job), "the escapee to run")
    [escapee] = marked_pids(job["mark"])
    assert proc_stat(escapee).session != job["pid"]  # type: ignore[union-attr]

    launcher.close_stdin()

    assert launcher.wait(timeout=_launcher.EXIT_GRACE + 2) == 0
    assert_tree_gone(job["pid"], job["mark"], timeout=1.0)


# --- the source itself -----------------------------------------------------------------------------------------


def test_launcher_source_parses_as_python_3_6() -> None:
    ast.parse(LAUNCHER.read_text(), filename=str(LAUNCHER), feature_version=(3, 6))


def test_launcher_imports_only_the_standard_library() -> None:
    tree = ast.parse(LAUNCHER.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))
    assert imported <= sys.stdlib_module_names


def test_launcher_watchdog_stops_everything_when_parallux_falls_silent(launcher: LauncherClient,
                                                                      tmp_path: Path) -> None:
    """A half-open connection delivers no EOF: silence past the watchdog must count as parallux being gone."""
    launcher.send(op="hello", watchdog=1.0)
    launcher.expect("hello")
    job = start_and_settle(launcher, 1, "sleep 1000 & sleep 1000", tmp_path / "w", sleeps_running(2))
    assert launcher.wait(timeout=6) == 0  # no request for 1 s: stopped, though stdin never closed
    assert_tree_gone(job["pid"], job["mark"], timeout=1)
    assert json.loads((tmp_path / "w" / "result.json").read_text())["status"] == "cancelled"


# --- work dir locks -------------------------------------------------------------------------------------------


def write_lock(work_dir: Path, **holder: Any) -> Path:
    work_dir.mkdir(parents=True, exist_ok=True)
    lock = work_dir / _launcher.LOCK_NAME
    lock.write_text(json.dumps(holder))
    return lock


def me_as_holder(run_id: str) -> dict[str, Any]:
    """A lock holder that is alive: this test process, on this host."""
    return {"run_id": run_id, "host": os.uname()[1], "pid": os.getpid(),
            "pid_start": _launcher.process_start(os.getpid())}


def test_launcher_a_live_runs_lock_leaves_the_work_dir_untouched(launcher: LauncherClient, tmp_path: Path) -> None:
    work = tmp_path / "w"
    write_lock(work, **me_as_holder("other-run"))
    (work / "stdout.txt").write_text("the other run's output\n")

    launcher.send(op="run", id=1, argv=sh("echo mine"), work_dir=str(work), command_text="echo mine",
                  record={"run_id": "this-run"})
    event = launcher.expect(("exit", "error"), 1)

    assert event["ev"] == "error" and event["reason"] == "locked"
    assert "in use by run other-run" in event["message"] and str(os.getpid()) in event["message"]
    assert (work / "stdout.txt").read_text() == "the other run's output\n"
    assert sorted(p.name for p in work.iterdir()) == [_launcher.LOCK_NAME, "stdout.txt"]


@pytest.mark.parametrize("holder", ["dead pid", "reused pid", "other host, stale", "garbage"])
def test_launcher_takes_over_a_stale_lock(launcher: LauncherClient, tmp_path: Path, holder: str) -> None:
    work = tmp_path / "w"
    if holder == "garbage":
        lock = work / _launcher.LOCK_NAME
        work.mkdir()
        lock.write_text("{not json")
    elif holder == "other host, stale":
        lock = write_lock(work, run_id="old", host="elsewhere", pid=1, pid_start=1)
        old = time.time() - _launcher.LOCK_FRESH - 10
        os.utime(lock, (old, old))
    else:
        dead = subprocess.Popen(["true"])
        dead.wait()
        pid, start = ((dead.pid, 12345) if holder == "dead pid"
                      else (os.getpid(), (_launcher.process_start(os.getpid()) or 0) + 1))
        lock = write_lock(work, run_id="old", host=os.uname()[1], pid=pid, pid_start=start)

    event = launcher.run(1, sh("echo mine"), work, command_text="echo mine", record={"run_id": "this-run"})

    assert event["ev"] == "exit" and event["returncode"] == 0
    assert json.loads(lock.read_text())["run_id"] == "this-run"
    assert (work / "stdout.txt").read_text() == "mine\n"


def test_launcher_takes_over_a_stale_lock_without_writing_through_links(launcher: LauncherClient,
                                                                          tmp_path: Path) -> None:
    work, outside = tmp_path / "w", tmp_path / "outside"
    outside.write_text("precious\n")
    write_lock(work, run_id="old", host="elsewhere", pid=1, pid_start=1)
    old = time.time() - _launcher.LOCK_FRESH - 10
    os.utime(work / _launcher.LOCK_NAME, (old, old))
    os.symlink(outside, work / f"{_launcher.LOCK_NAME}.tmp{launcher.serving_pid()}")  # its temporary's name

    event = launcher.run(1, sh("true"), work, record={"run_id": "this-run"})

    assert event["ev"] == "exit" and event["returncode"] == 0
    assert outside.read_text() == "precious\n"
    assert json.loads((work / _launcher.LOCK_NAME).read_text())["run_id"] == "this-run"
    assert not (work / _launcher.LOCK_NAME).is_symlink()


def test_launcher_a_fresh_lock_of_another_host_counts_as_live(launcher: LauncherClient, tmp_path: Path) -> None:
    work = tmp_path / "w"
    write_lock(work, run_id="there", host="elsewhere", pid=1, pid_start=1)  # mtime: now

    launcher.send(op="run", id=1, argv=sh("true"), work_dir=str(work), record={"run_id": "here"})

    assert launcher.expect(("exit", "error"), 1)["reason"] == "locked"


def test_launcher_releases_its_locks_when_it_ends(launcher: LauncherClient, tmp_path: Path) -> None:
    for n in range(3):
        launcher.run(n, sh("true"), tmp_path / str(n), record={"run_id": "r"})
        assert (tmp_path / str(n) / _launcher.LOCK_NAME).exists()  # held for the rest of the run
    launcher.send(op="run", id=9, argv=sh("true"), work_dir=str(tmp_path / "0"), record={"run_id": "r"})
    assert launcher.expect(("exit", "error"), 9)["ev"] == "exit"  # a retry in the same run: its own lock

    launcher.close_stdin()
    assert launcher.wait(timeout=5) == 0

    assert [p for p in tmp_path.rglob(_launcher.LOCK_NAME)] == []


def test_launcher_keeps_writing_into_the_workspace_its_first_command_checked(launcher: LauncherClient,
                                                                            tmp_path: Path) -> None:
    # The workspace's path is checked at the run's first command (no link a co-user planted on it). Swapped
    # afterwards for a link to elsewhere -- by anyone who can write its parent -- it must not send the later
    # commands' files there: the launcher holds the workspace it checked. (The command itself is started in
    # its work dir by path, which now leads nowhere: it ends "error", having written nothing elsewhere.)
    ws, elsewhere = tmp_path / "ws", tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = launcher.run(1, sh("true"), ws / "a", workspace=str(ws), record={"run_id": "r"})
    assert first["ev"] == "exit" and first["returncode"] == 0
    ws.rename(tmp_path / "ws-checked")
    os.symlink(elsewhere, ws)

    launcher.send(op="run", id=2, argv=sh("echo later"), work_dir=str(ws / "b"), workspace=str(ws),
                  record={"run_id": "r"}, mark=f"test-{uuid.uuid4().hex}@r1.2.1")
    launcher.expect(("exit", "error"), 2)

    assert list(elsewhere.iterdir()) == []
    launcher.close_stdin()
    assert launcher.wait(timeout=5) == 0
    assert list((tmp_path / "ws-checked").rglob(_launcher.LOCK_NAME)) == []  # released where they were taken


@pytest.mark.parametrize("order", ["command first", "command 0.1 s first", "launcher first"])
def test_launcher_sigterm_from_outside_ends_commands_error(launcher: LauncherClient, tmp_path: Path,
                                                           order: str) -> None:
    """A batch system ending its job (a Slurm allocation's end) signals every process at once, in no set
    order: for a launcher whose hello asked for it, the commands' records say "error" (cut short, retried
    where asked), not "failed" nor "cancelled"."""
    launcher.send(op="hello", sigterm="error")
    launcher.expect("hello")
    job = start_and_settle(launcher, 1, "sleep 1000", tmp_path / "w", sleeps_running(1))
    sleeps = [p for p in marked_pids(job["mark"]) if command_name(p) == "sleep"]
    targets = [launcher.pid] + sleeps if order == "launcher first" else sleeps + [launcher.pid]
    for pid in targets:
        os.kill(pid, signal.SIGTERM)
        if order == "command 0.1 s first":
            time.sleep(0.1)
    exit_event = launcher.expect("exit", 1)
    assert exit_event["status"] == "error" and exit_event["reason"] == "terminated"
    assert "SIGTERM" in exit_event["error"]
    assert json.loads((tmp_path / "w" / "result.json").read_text())["status"] == "error"


def test_launcher_sigterm_without_the_hello_option_cancels(launcher: LauncherClient, tmp_path: Path) -> None:
    """A local or SSH launcher stopped by SIGTERM (systemd, kill of the process group) records its commands
    stopped: "cancelled", saying why (``stopped``): parallux, which asked for nothing, reports them "error"."""
    start_and_settle(launcher, 1, "sleep 1000", tmp_path / "w", sleeps_running(1))
    os.kill(launcher.pid, signal.SIGTERM)
    exit_event = launcher.expect("exit", 1)
    assert exit_event["status"] == "cancelled" and exit_event["stopped"] == "it got SIGTERM"


@pytest.mark.parametrize("how", ["quit", "kill request", "eof"])
def test_launcher_says_which_commands_it_stopped_unasked(launcher: LauncherClient, tmp_path: Path,
                                                         how: str) -> None:
    """A quit or a kill request is parallux's own stop: no ``stopped``. EOF is the launcher's own end."""
    start_and_settle(launcher, 1, "sleep 1000", tmp_path / "w", sleeps_running(1))
    if how == "quit":
        launcher.send(op="quit", grace=1.0)
    elif how == "kill request":
        launcher.send(op="kill", id=1, grace=1.0)
    else:
        launcher.close_stdin()
    exit_event = launcher.expect("exit", 1)
    assert exit_event["status"] == "cancelled"
    assert exit_event.get("stopped") == ("its input was closed" if how == "eof" else None)


def test_launcher_whose_guardian_is_killed_ends_its_commands_error(launcher: LauncherClient,
                                                                   tmp_path: Path) -> None:
    """The guardian (the process parallux or sshd started) ends only after its launcher, unless killed: its
    death is the launcher's, and the commands the launcher then stops are "error" -- retried, never
    "cancelled" by nobody."""
    job = start_and_settle(launcher, 1, "sleep 1000", tmp_path / "w", sleeps_running(1))
    os.kill(launcher.pid, signal.SIGKILL)  # the guardian: the launcher gets SIGTERM (PR_SET_PDEATHSIG)
    exit_event = launcher.expect("exit", 1)
    assert exit_event["status"] == "error" and exit_event["reason"] == "died"
    assert exit_event["error"] == exit_event["stopped"] == f"its guardian process {launcher.pid} was killed"
    assert json.loads((tmp_path / "w" / "result.json").read_text())["status"] == "error"
    assert_tree_gone(job["pid"], job["mark"])
