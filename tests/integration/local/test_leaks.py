"""Nothing a command started outlives what should stop it: a killed launcher, a frozen reader, an escapee.

Through the real CLI, on a local runner and on an SSH runner of the test sshd (the same machine, so /proc
shows the remote processes too). The processes a test starts carry a fresh token in their *command line*:
an escapee that ran ``setsid env -i`` has neither its group, nor its session, nor its environment left,
but its argv still names it (``pids_with_arg``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.escapees import Cli, finish, sleeper
from tests.escapees import cli  # noqa: F401 (a fixture)
from tests.helpers import kill_pids, new_token, pids_with_arg, wait_until


def escaping(token: str) -> str:
    """A command with a child in its group and an escapee that left group, session, environment and tree."""
    return f"{sleeper(token + '-child')} & (setsid env -i {sleeper(token + '-escapee')} &); sleep 600"


def started(token: str, count: int) -> bool:
    """Every command's child and escapee are running."""
    return (len(pids_with_arg(token + "-child", exact=True)) == count
            and len(pids_with_arg(token + "-escapee", exact=True)) == count)


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
    tests/integration/ssh/test_ssh_reconnect.py.)"""
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
