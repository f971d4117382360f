"""Nothing a command started outlives what should stop it: a killed launcher, a frozen reader, an escapee.

Through the real CLI, on a local runner and on an SSH runner of the test sshd (the same machine, so /proc
shows the remote processes too). The processes a test starts carry a fresh token in their *command line*:
an escapee that ran ``setsid env -i`` has neither its group, nor its session, nor its environment left,
but its argv still names it (``pids_with_arg``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import cli_env, kill_pids, new_token, pids_with_arg, wait_until, write_config
from tests.sshd import HOST_ALIAS, SshdServer

PY = sys.executable
KINDS = ["local", "ssh"]


def sleeper(tag: str) -> str:
    """A process that sleeps for 10 minutes with ``tag`` in its argv."""
    return f"{PY} -c 'import time; time.sleep(600)' {tag}"


def escaping(token: str) -> str:
    """A command with a child in its group and an escapee that left group, session, environment and tree."""
    return f"{sleeper(token + '-child')} & (setsid env -i {sleeper(token + '-escapee')} &); sleep 600"


class Cli:
    """The parallux CLI on a config, with a local runner or an SSH runner of the test sshd named ``r``."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.srv: SshdServer | None = request.getfixturevalue("sshd_server") if kind == "ssh" else None

    def runner(self, options: str = "") -> str:
        workspace = repr(str(self.tmp_path / "ws"))
        if self.kind == "local":
            return f"r = goal.local(workspace={workspace}{options})"
        return f"r = goal.ssh('server', host=goal.args['host'], workspace={workspace}{options})"

    def config(self, body: str, options: str = "") -> Path:
        return write_config(self.tmp_path, "import sys, time\nfrom parallux import goal\n"
                            + self.runner(options) + "\n" + body)

    def argv(self, config: Path) -> list[str]:
        return [PY, "-m", "parallux", str(config), "--", f"host={HOST_ALIAS}"]

    def env(self, **extra: str) -> dict[str, str]:
        base = self.srv.client_env() if self.srv is not None else cli_env(self.tmp_path)
        return {**base, **extra}

    def start(self, config: Path, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(config), cwd=self.tmp_path, env=self.env(**env), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)

    def run(self, config: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(config), cwd=self.tmp_path, env=self.env(**env), text=True,
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(params=KINDS)
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    return Cli(request.param, tmp_path, request)


def started(token: str, count: int) -> bool:
    """Every command's child and escapee are running."""
    return (len(pids_with_arg(token + "-child", exact=True)) == count
            and len(pids_with_arg(token + "-escapee", exact=True)) == count)


def finish(process: subprocess.Popen[str], token: str) -> tuple[str, str]:
    try:
        return process.communicate(timeout=30)
    finally:
        process.kill()
        kill_pids(pids_with_arg(token))


def ppid_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


# -- a launcher that dies ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("victim", ["launcher", "guardian"])
@pytest.mark.parametrize("cgroups", ["on", "off"])
def test_killed_launcher_leaves_no_command_running(cli: Cli, victim: str, cgroups: str) -> None:
    """kill -9 of the launcher: its guardian (the process parallux started, a subreaper) stops everything the
    commands started within 5 s, escapees included; kill -9 of the guardian: the launcher does it itself."""
    if cli.kind == "ssh" and cgroups == "off":
        pytest.skip("the remote launcher's environment is the login's: PARALLUX_CGROUPS=0 does not reach it")
    token = new_token()
    config = cli.config(f"""
for _ in range(3):
    r.run({escaping(token)!r}, check=False)
print(r.facts["pid"] if {victim!r} == "launcher" else r.facts["guardian"], flush=True)
""", ", max_jobs=3")
    process = cli.start(config, PARALLUX_CGROUPS="1" if cgroups == "on" else "0")
    try:
        target = int(process.stdout.readline())  # type: ignore[union-attr]
        assert wait_until(lambda: started(token, 3), timeout=20), pids_with_arg(token)
        os.kill(target, signal.SIGKILL)
        killed = time.monotonic()
        assert wait_until(lambda: pids_with_arg(token) == [], timeout=5), pids_with_arg(token)
        assert time.monotonic() - killed < 5
    finally:
        _, stderr = finish(process, token)
    assert process.returncode == 0, stderr  # check=False: the commands ended "error", the run went on


# -- escapees ------------------------------------------------------------------------------------------------------

def test_escapee_is_stopped_with_its_commands_timeout(cli: Cli) -> None:
    """(setsid env -i prog &) leaves group, session, environment and tree: its command's cgroup still holds
    it, so the timeout stops it with the rest of the tree, before the result is reported."""
    token = new_token()
    config = cli.config(f"""
import os
def alive():
    return [p for p in os.listdir("/proc") if p.isdigit() and {token!r}.encode() in open_cmdline(p)]
def open_cmdline(pid):
    try:
        with open(f"/proc/{{pid}}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""
h = r.run({escaping(token)!r}, timeout=1.5, check=False)
while not alive():
    time.sleep(0.05)
print(h.sync().status, len(alive()), flush=True)
""")
    try:
        done = cli.run(config)
    finally:
        kill_pids(pids_with_arg(token))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["timeout", "0"]


def test_escapee_of_the_fallback_is_stopped_at_the_end_of_the_run(tmp_path: Path,
                                                                   request: pytest.FixtureRequest) -> None:
    """Without cgroups an escapee cannot be told apart from other orphans until the run ends: then the
    launcher, a subreaper, finds it among its own descendants."""
    cli = Cli("local", tmp_path, request)
    token = new_token()
    config = cli.config(f"r.run({escaping(token)!r}, timeout=1, check=False).sync()\n")
    try:
        done = cli.run(config, PARALLUX_CGROUPS="0")
        assert done.returncode == 0, done.stderr
        assert wait_until(lambda: pids_with_arg(token) == [], timeout=3), pids_with_arg(token)
    finally:
        kill_pids(pids_with_arg(token))


def test_escapees_are_stopped_after_sigkill_of_parallux(cli: Cli) -> None:
    """(An SSH runner without reconnection: with it, its launcher waits its grace first, see
    tests/test_ssh_reconnect.py.)"""
    token = new_token()
    config = cli.config(f"""
for _ in range(2):
    r.run({escaping(token)!r}, check=False)
print("started", flush=True)
""", ", reconnect=0" if cli.kind == "ssh" else "")
    process = cli.start(config)
    try:
        assert process.stdout.readline().strip() == "started"  # type: ignore[union-attr]
        assert wait_until(lambda: started(token, 2), timeout=20), pids_with_arg(token)
        process.kill()
        assert wait_until(lambda: pids_with_arg(token) == [], timeout=5), pids_with_arg(token)
    finally:
        finish(process, token)


# -- a reader that stops reading ------------------------------------------------------------------------------

def test_frozen_sshd_never_blocks_the_remote_watchdog(sshd_server: SshdServer, tmp_path: Path,
                                                       request: pytest.FixtureRequest) -> None:
    """The sshd serving the connection is stopped (SIGSTOP) while 600 commands finish: their exit events
    fill the pipe nobody reads. The launcher's writes must not block it, so its watchdog (10 s here) still
    stops the long commands; parallux itself notices the silence by keepalive and ends. (reconnect=0: with
    reconnection the watchdog only detaches the launcher, which waits its grace for parallux to come back.)"""
    cli = Cli("ssh", tmp_path, request)
    token = new_token()
    short = new_token()
    config = cli.config(f"""
for _ in range(3):
    r.run({sleeper(token)!r}, check=False)
for _ in range(600):
    r.run("sleep 6", check=False, env={{"SHORT": {short!r}}})
print(r.facts["pid"], flush=True)
""", ", max_jobs=700, keepalive=2, keepalive_count=2, watchdog=10, reconnect=0")
    process = cli.start(config)
    frozen = None
    try:
        launcher = int(process.stdout.readline())  # type: ignore[union-attr]
        assert wait_until(lambda: len(pids_with_arg(token, exact=True)) == 3 and count_env(short) >= 600,
                          timeout=30)
        frozen = ppid_of(ppid_of(launcher))  # launcher -> its guardian -> what sshd started it under
        while Path(f"/proc/{frozen}/comm").read_text().strip() != "sshd":
            frozen = ppid_of(frozen)
        os.kill(frozen, signal.SIGSTOP)
        stopped = time.monotonic()
        assert wait_until(lambda: pids_with_arg(token) == [], timeout=10 + 10), pids_with_arg(token)
        assert time.monotonic() - stopped < 20
        process.communicate(timeout=30)  # keepalive ended the run
    finally:
        if frozen is not None:
            os.kill(frozen, signal.SIGKILL)
        finish(process, token)


def count_env(token: str) -> int:
    from tests.helpers import pids_with_env
    return len(pids_with_env(token))
