"""An SSH runner whose connection drops reconnects, and its remote launcher, which ran on meanwhile, is attached
again (SPEC 19); past the grace, or without reconnection, or with parallux gone, nothing is left on the server.

Through the real CLI against the real OpenSSH sshd on loopback. The connection is cut by killing the sshd
process serving it: the listener's child above the test's commands (``serving_sshd``), never the listener
(unless a test started a server of its own to stop it). The commands carry a fresh ``PARALLUX_TEST_MARK``
in their environment; the tests find their processes by it, and the launcher by a command's parent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sshd import HOST_ALIAS, SshdServer, _launch, start_sshd
from tests.attach import bridge, connect_as, ended_pipes, nobody_python  # noqa: F401
from tests.ssh_cli import CLI_TIMEOUT, MARK_VAR, marked_pids, parent_of, serving_sshd, wait_for, write_config

LONG = 6  # seconds each of the commands runs


def cli(srv: SshdServer, config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "parallux", str(config), "--log", "run.jsonl", *args, "--",
                             f"host={HOST_ALIAS}"], cwd=config.parent, env=srv.client_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def eight_config(tmp_path: Path, mark: str, options: str = "", after: str = "") -> Path:
    """Eight commands of LONG seconds on the server, each saying something before and after; then, unless
    they failed, one more command there, and every result's stdout read back."""
    return write_config(tmp_path, f"""
        import json
        server = goal.ssh("server", host=goal.args["host"], workspace={str(tmp_path / 'ws')!r}, max_jobs=8
                          {options})
        handles = [server.run(f"echo begin {{i}}; touch up; sleep {LONG}; echo end {{i}}", name=f"c{{i}}",
                              work_relpath=f"c{{i}}", check=False, env={{"{MARK_VAR}": "{mark}"}})
                   for i in range(8)]
        results = [h.sync() for h in handles]
        print(json.dumps([[r.name, r.status, r.error] for r in results]), flush=True)
        {after}
    """)


def wait_running(workspace: Path, mark: str, count: int = 8) -> list[int]:
    return wait_for(lambda: marked_pids(mark) if len(list(workspace.rglob("up"))) == count else None, 30,
                    f"{count} remote commands to start")


def cut(srv: SshdServer, pid: int, stop_listener: bool = False) -> None:
    """Kill the sshd process serving the connection ``pid`` runs under (the listener's child); first stop the
    listener, if asked (it has no part in a running connection)."""
    serving = serving_sshd(pid, srv)
    assert parent_of(serving) == srv.pid
    if stop_listener:
        srv.stop()
    os.kill(serving, signal.SIGKILL)


def launcher_of(pids: list[int]) -> int:
    """The launcher: the parent of a command's shell."""
    shells = {parent_of(pid) if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep" else pid for pid in pids}
    return parent_of(sorted(shells)[0])


def attach_dirs(launcher: int) -> list[Path]:
    return sorted(Path(os.environ.get("TMPDIR") or "/tmp").glob(f"parallux-{os.geteuid()}-{launcher}-*"))


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def finish(process: subprocess.Popen[str], mark: str, timeout: float = CLI_TIMEOUT) -> tuple[str, str]:
    try:
        return process.communicate(timeout=timeout)
    finally:
        process.kill()
        process.communicate()


def log_events(path: Path, event: str) -> list[dict]:
    return [e for e in map(json.loads, path.read_text().splitlines()) if e.get("event") == event]


@pytest.fixture
def mark() -> str:
    return os.urandom(8).hex()


# -- reconnected ------------------------------------------------------------------------------------------------

def test_SshRunner_reconnects_and_its_running_commands_end_ok(sshd_server: SshdServer, tmp_path: Path,
                                                            mark: str) -> None:
    """Issue 23's trial: the connection dropped 2 s into eight commands of 6 s. They all end ok with their
    whole output, the runner runs more afterwards, and every result's stdout can be read at the end."""
    config = eight_config(tmp_path, mark, after=f"""
        again = [server.run("echo again $PARALLUX_RUNNER", check=False) for _ in range(3)]
        print(json.dumps([[r.runner_name, r.status, r.read_stdout()] for r in (h.sync() for h in again)]))
        print(json.dumps([r.read_stdout() for r in results]))
        print(goal.runner_status(server).connected)
    """)
    process = cli(sshd_server, config)
    try:
        pids = wait_running(tmp_path / "ws", mark)
        time.sleep(2)
        before = launcher_of(pids)
        cut(sshd_server, pids[0])
        stdout, stderr = finish(process, mark)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    lines = stdout.splitlines()
    assert json.loads(lines[0]) == [[f"c{i}", "ok", None] for i in range(8)], stderr
    assert json.loads(lines[1]) == [["server", "ok", "again server\n"]] * 3
    assert json.loads(lines[2]) == [f"begin {i}\nend {i}\n" for i in range(8)]
    assert lines[3] == "True"
    for i in range(8):  # the records on the server say so too
        record = json.loads((tmp_path / "ws" / f"c{i}" / "result.json").read_text())
        assert record["status"] == "ok" and record["returncode"] == 0
    assert "reconnect" in stderr  # one line as it drops, one as it is back
    [lost] = log_events(tmp_path / "run.jsonl", "connection_lost")
    [back] = log_events(tmp_path / "run.jsonl", "reconnected")
    assert lost["runner"] == back["runner"] == "server" and back["launcher"] == before
    wait_for(lambda: not alive(before) and not attach_dirs(before), 10, "the launcher to end with the run")


def test_SshRunner_down_takes_no_work_its_queue_goes_elsewhere_then_takes_work_again(tmp_path: Path,
                                                                                     mark: str) -> None:
    """The server's listener is stopped while the connection is cut: the runner stays down until it comes
    back. Meanwhile commands that could run on the server or here all run here, though the server has a
    free slot; once it reconnected, its commands run there again."""
    srv = start_sshd(tmp_path / "sshd")
    workspace = tmp_path / "ws"
    config = write_config(tmp_path, f"""
        import json, time
        server = goal.ssh("server", host=goal.args["host"], workspace={str(workspace)!r}, max_jobs=9)
        local = goal.local("local", workspace={str(tmp_path / 'local-ws')!r}, max_jobs=2)
        goal.setRunner([server, local])
        long = [server.run("touch up; sleep {LONG}; echo done", check=False, env={{"{MARK_VAR}": "{mark}"}})
                for _ in range(8)]
        while goal.runner_status(server).connected:
            time.sleep(0.02)
        print("down", flush=True)
        for i in range(6):
            goal.schd("echo meanwhile", name=f"m{{i}}")
        meanwhile = goal.issue().sync()
        print(json.dumps(sorted({{r.runner_name for r in meanwhile}})), flush=True)
        print(json.dumps([[r.status, r.read_stdout()] for r in (h.sync() for h in long)]))
        print(server.run("echo back", check=False).sync().read_stdout().strip())
    """)
    process = cli(srv, config)
    try:
        pids = wait_running(workspace, mark)
        cut(srv, pids[0], stop_listener=True)
        assert process.stdout.readline().strip() == "down"  # type: ignore[union-attr]
        assert json.loads(process.stdout.readline()) == ["local"]  # type: ignore[union-attr]
        srv._proc = _launch(srv.tmpdir, srv.sshd_config, srv.log, srv.port)  # the same server, back
        stdout, stderr = finish(process, mark)
    finally:
        process.kill()
        srv.stop()
    assert process.returncode == 0, stderr
    lines = stdout.splitlines()
    assert json.loads(lines[0]) == [["ok", "done\n"]] * 8, stderr
    assert lines[1] == "back"


def test_SshRunner_silent_connection_is_replaced_and_the_launcher_takes_the_new_channel(
        sshd_server: SshdServer, tmp_path: Path, mark: str) -> None:
    """A network that goes silent (the serving sshd stopped, SIGSTOP): no EOF reaches anyone. Keepalive tells
    parallux, which connects again; the launcher, still holding the silent channel, is attached to the new
    one in its place; the commands end ok, and the frozen connection's end later changes nothing."""
    config = eight_config(tmp_path, mark, ", keepalive=0.5, keepalive_count=2", after="""
        print(json.dumps([r.read_stdout() for r in results]))
    """)
    process = cli(sshd_server, config)
    frozen = None
    try:
        pids = wait_running(tmp_path / "ws", mark)
        frozen = serving_sshd(pids[0], sshd_server)
        os.kill(frozen, signal.SIGSTOP)
        stdout, stderr = finish(process, mark)
    finally:
        process.kill()
        if frozen is not None:
            os.kill(frozen, signal.SIGKILL)
    assert process.returncode == 0, stderr
    lines = stdout.splitlines()
    assert json.loads(lines[0]) == [[f"c{i}", "ok", None] for i in range(8)], stderr
    assert json.loads(lines[1]) == [f"begin {i}\nend {i}\n" for i in range(8)]
    assert len(log_events(tmp_path / "run.jsonl", "reconnected")) == 1


def test_SshRunner_attach_point_is_closed_to_another_user(sshd_server: SshdServer, tmp_path: Path, mark: str,
                                                         nobody_python: tuple[list[str], str, Path]) -> None:
    """While an SSH run goes on, nobody (another local user of the server) can neither connect to its
    launcher's attach socket nor have the launcher's own bridge attach to it; the run is undisturbed."""
    user, python, launcher_file = nobody_python
    config = eight_config(tmp_path, mark)
    process = cli(sshd_server, config)
    try:
        pids = wait_running(tmp_path / "ws", mark)
        launcher = launcher_of(pids)
        [directory] = attach_dirs(launcher)
        path = str(directory / "launcher.sock")
        assert connect_as(user, python, path).stdout.split() == ["connect", "PermissionError"]
        theirs = bridge({"path": path, "pid": launcher}, seq=0, token="guessed", python=python, user=user,
                        launcher_file=launcher_file)
        refused = theirs.receive()
        assert refused["ev"] == "refused" and f"belongs to uid {os.geteuid()}" in refused["message"], refused
        stdout, stderr = finish(process, mark)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert json.loads(stdout.splitlines()[0]) == [[f"c{i}", "ok", None] for i in range(8)]


# -- not reconnected -----------------------------------------------------------------------------------------

def test_SshRunner_without_reconnection_ends_them_error_and_leaves_nothing(sshd_server: SshdServer,
                                                                           tmp_path: Path, mark: str) -> None:
    config = eight_config(tmp_path, mark, ", reconnect=0")
    process = cli(sshd_server, config)
    try:
        pids = wait_running(tmp_path / "ws", mark)
        launcher = launcher_of(pids)
        cut(sshd_server, pids[0])
        stdout, stderr = finish(process, mark)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    results = json.loads(stdout.splitlines()[0])
    assert [status for _, status, _ in results] == ["error"] * 8, results
    assert all("connection lost" in error for _, _, error in results), results
    wait_for(lambda: not marked_pids(mark) and not alive(launcher), 10, "the remote launcher to stop everything")
    assert attach_dirs(launcher) == []  # it never made one


@pytest.mark.parametrize("end", ["grace", "sigkill", "sigint"])
def test_SshRunner_gone_for_longer_than_the_grace_leaves_nothing_on_the_server(tmp_path: Path, mark: str,
                                                                               end: str) -> None:
    """The listener is stopped and the connection cut, for longer than reconnect= (4 s): parallux ends the
    commands error (or is SIGKILLed meanwhile: then no one ever comes back; or interrupted: then it ends
    without waiting for the connection); either way the launcher stops them within the grace + 10 s, and
    nothing of it is left."""
    grace = 4
    srv = start_sshd(tmp_path / "sshd")
    config = eight_config(tmp_path, mark, f", reconnect={grace}")
    config.write_text(config.read_text().replace("sleep 6", "sleep 600"))
    process = cli(srv, config)
    try:
        pids = wait_running(tmp_path / "ws", mark)
        launcher = launcher_of(pids)
        cut(srv, pids[0], stop_listener=True)
        cut_at = time.monotonic()
        if end != "grace":
            time.sleep(0.5)
            process.send_signal(signal.SIGKILL if end == "sigkill" else signal.SIGINT)
        stdout, stderr = finish(process, mark)
        wait_for(lambda: not marked_pids(mark), grace + 10 - (time.monotonic() - cut_at),
                 "the launcher to stop the commands")
        wait_for(lambda: not alive(launcher) and not attach_dirs(launcher), 10, "the launcher to end")
    finally:
        process.kill()
        srv.stop()
    if end == "sigint":
        assert process.returncode == 130, stderr
    if end == "grace":
        assert process.returncode == 0, stderr
        results = json.loads(stdout.splitlines()[0])
        assert [status for _, status, _ in results] == ["error"] * 8, results
        assert all(f"not reconnected within reconnect={grace} s" in error for _, _, error in results), results
    records = [json.loads((tmp_path / "ws" / f"c{i}" / "result.json").read_text()) for i in range(8)]
    assert {record["status"] for record in records} == {"cancelled"}
    assert all("reconnect" in record["stopped"] for record in records)
