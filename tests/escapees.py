"""Commands that try to outlive what should stop them (a child in their group, an escapee that left group,
session and environment), and the CLI on a local runner or an SSH runner of the test sshd, to run them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import cli_env, kill_pids, pids_with_arg, write_config
from tests.sshd import HOST_ALIAS, SshdServer

PY = sys.executable
KINDS = ["local", "ssh"]


def sleeper(tag: str) -> str:
    """A process that sleeps for 10 minutes with ``tag`` in its argv."""
    return f"{PY} -c 'import time; time.sleep(600)' {tag}"


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


def finish(process: subprocess.Popen[str], token: str) -> tuple[str, str]:
    try:
        return process.communicate(timeout=30)
    finally:
        process.kill()
        kill_pids(pids_with_arg(token))
