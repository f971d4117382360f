"""A launcher that may be reattached, spoken to as a real subprocess: JSON lines over pipes, the launcher's own
bridge mode (``--attach``) as a new SSH channel would start it, and a second user (``nobody``) to try it as.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parallux import _launcher

LAUNCHER = Path(_launcher.__file__)
TOKEN = "0123456789abcdef" * 2


class Pipe:
    """A process spoken to in JSON lines over its stdin and stdout (killed, if need be, after the test)."""

    started: list[Pipe] = []

    def __init__(self, argv: list[str], **popen: Any) -> None:
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, **popen)
        Pipe.started.append(self)

    def send(self, **message: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, self.process.stderr.read() if self.process.stderr else "EOF"  # type: ignore[union-attr]
        return json.loads(line)

    def close_input(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def end(self) -> None:
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(autouse=True)
def ended_pipes() -> Iterator[None]:
    yield
    while Pipe.started:
        Pipe.started.pop().end()


def bridge(point: dict[str, Any], seq: int, token: str = TOKEN, python: str = sys.executable,
           user: list[str] | None = None, launcher_file: Path = LAUNCHER) -> Pipe:
    """The launcher's file in attach mode (what a reconnecting runner runs), told where to attach."""
    pipe = Pipe([*(user or []), python, "-I", "-S", str(launcher_file), _launcher.ATTACH_ARG])
    pipe.send(op="attach", path=point["path"], pid=point["pid"], token=token, seq=seq)
    return pipe


@pytest.fixture
def nobody_python(tmp_path: Path) -> Iterator[tuple[list[str], str, Path]]:
    """How to run a command as nobody, a Python it may run, and a copy of the launcher's file it may read."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to act as another user")
    python = shutil.which("python3", path="/usr/bin:/bin")
    assert python is not None
    readable = Path(tempfile.mkdtemp(prefix="parallux-test-"))
    readable.chmod(0o755)
    shutil.copy(LAUNCHER, readable / "_launcher.py")
    (readable / "_launcher.py").chmod(0o644)
    try:
        yield ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"], python, readable / "_launcher.py"
    finally:
        shutil.rmtree(readable)


def connect_as(user: list[str], python: str, path: str) -> subprocess.CompletedProcess[str]:
    """As that user: connect to the socket, send an attach request with the right token, print the answer."""
    program = (f"import socket, sys\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect({path!r})\n"
               f"except OSError as e:\n    print('connect', type(e).__name__); sys.exit()\n"
               f"try:\n    s.sendall(b'{{\"op\": \"attach\", \"token\": \"{TOKEN}\", \"seq\": 0}}\\n')\n"
               f"    print('answer', repr(s.recv(100)))\n"
               f"except (BrokenPipeError, ConnectionResetError):\n    print('answer', 'closed')\n")
    return subprocess.run([*user, python, "-c", program], capture_output=True, text=True, timeout=30)
