"""The CLI against the test sshd (tests/sshd.py) in a subprocess, and the /proc reads that find what a test's
commands started (by ``PARALLUX_TEST_MARK``, never by name) and the sshd process serving a connection.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.sshd import HOST_ALIAS, SshdServer

CLI_TIMEOUT = 60
MARK_VAR = "PARALLUX_TEST_MARK"


# -- helpers -------------------------------------------------------------------------------------------------

def write_config(tmp_path: Path, body: str, name: str = "config.py") -> Path:
    path = tmp_path / name
    path.write_text("from parallux import goal\n" + textwrap.dedent(body))
    return path


def cli(srv: SshdServer, config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "parallux", str(config), "--", f"host={HOST_ALIAS}", *args]


def run_cli(srv: SshdServer, config: Path, *args: str, timeout: float = CLI_TIMEOUT,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(srv, config, *args), cwd=config.parent, env=env or srv.client_env(),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def start_cli(srv: SshdServer, config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(cli(srv, config, *args), cwd=config.parent, env=srv.client_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def marked_pids(mark: str) -> list[int]:
    """Live processes whose environment carries ``PARALLUX_TEST_MARK=<mark>`` (zombies are dead)."""
    wanted = f"{MARK_VAR}={mark}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if wanted in environ and state not in ("Z", "X"):
            found.append(int(entry))
    return found


def wait_for(predicate, timeout: float, what: str, step: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def serving_sshd(pid: int, srv: SshdServer) -> int:
    """The sshd process serving the connection that ``pid`` runs under -- a child of *our* sshd only."""
    chain = [pid]
    while chain[-1] > 1:
        chain.append(parent_of(chain[-1]))
    assert srv.pid in chain, f"process {pid} does not run under the test sshd {srv.pid}: {chain}"
    return chain[chain.index(srv.pid) - 1]
