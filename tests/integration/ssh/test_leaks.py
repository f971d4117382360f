"""Nothing a command started outlives what should stop it, over SSH: a frozen sshd never blocks the remote
launcher's watchdog. Through the real CLI against the test sshd (the same machine, so /proc shows the remote
processes too).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.escapees import Cli, finish, sleeper
from tests.helpers import new_token, pids_with_arg, wait_until
from tests.sshd import SshdServer


def ppid_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


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
