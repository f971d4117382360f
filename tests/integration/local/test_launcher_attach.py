"""A launcher that may be reattached (an SSH runner's, see "reattaching" in _launcher.py), as a real subprocess.

The tests play both parallux and the new SSH channel: they start ``python -I -S _launcher.py`` with pipes,
say hello with a grace and a token, close its stdin (the channel drops), and attach through the launcher's own
bridge mode (``--attach``) started with pipes of its own, as sshd would start it for a new channel. A second
user is ``nobody`` (the tests run as root): ``setpriv`` runs the bridge, or a plain connect(), as that user.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parallux import _launcher
from parallux._redelivery import Redelivery

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


def run_request(job: int, n: int, command: str, workspace: Path, mark: str) -> dict[str, Any]:
    return {"op": "run", "id": job, "n": n, "argv": ["sh", "-c", command], "env": {"PATH": os.environ["PATH"],
            _launcher.MARK_VAR: mark}, "work_dir": str(workspace / f"j{job}"), "workspace": str(workspace),
            "cwd": None, "command_text": command, "wrapped": command, "quiet_start": True, "mark": mark,
            "record": {}}


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[tuple[Pipe, dict[str, Any]]]:
    """A launcher with a grace of 30 s, and where it said it waits."""
    pipe = Pipe([sys.executable, "-I", "-S", str(LAUNCHER)])
    pipe.send(op="hello", watchdog=60, reconnect=30, token=TOKEN)
    yield pipe, pipe.receive()["attach"]


def bridge(point: dict[str, Any], seq: int, token: str = TOKEN, python: str = sys.executable,
           user: list[str] | None = None, launcher_file: Path = LAUNCHER) -> Pipe:
    """The launcher's file in attach mode (what a reconnecting runner runs), told where to attach."""
    pipe = Pipe([*(user or []), python, "-I", "-S", str(launcher_file), _launcher.ATTACH_ARG])
    pipe.send(op="attach", path=point["path"], pid=point["pid"], token=token, seq=seq)
    return pipe


def events_until_pong(pipe: Pipe) -> list[dict[str, Any]]:
    pipe.send(op="ping")
    events = []
    while (event := pipe.receive())["ev"] != "pong":
        events.append(event)
    return events


def test_launcher_replays_what_came_while_detached_in_order_and_once(launcher: tuple[Pipe, dict[str, Any]],
                                                                     tmp_path: Path) -> None:
    pipe, point = launcher
    assert stat.S_IMODE(os.stat(Path(point["path"]).parent).st_mode) == 0o700
    mark = os.urandom(6).hex()
    pipe.send(**run_request(1, 1, "true", tmp_path, mark))
    first = pipe.receive()
    assert (first["ev"], first["id"], first["seq"], first["got"]) == ("exit", 1, 1, 1)
    go = tmp_path / "go"
    pipe.send(**run_request(2, 2, f"while [ ! -e {go} ]; do sleep 0.02; done; echo two", tmp_path, mark))
    pipe.send(**run_request(3, 3, f"while [ ! -e {go} ]; do sleep 0.02; done; echo three", tmp_path, mark))
    pipe.close_input()  # the channel drops: both end while nobody listens
    go.touch()
    deadline = time.monotonic() + 30
    while not all((tmp_path / job / "result.json").exists() for job in ("j2", "j3")):
        assert time.monotonic() < deadline, "the commands did not end"
        time.sleep(0.02)
    assert pipe.process.poll() is None
    channel = bridge(point, seq=1)
    attached = channel.receive()
    assert (attached["ev"], attached["got"], attached["seq"], attached["pid"]) == ("attached", 3, 3, point["pid"])
    replayed = [channel.receive(), channel.receive()]
    assert [(e["ev"], e["seq"], e["status"]) for e in replayed] == [("exit", 2, "ok"), ("exit", 3, "ok")]
    assert {e["id"] for e in replayed} == {2, 3}
    channel.send(**run_request(3, 3, "echo again", tmp_path, mark))  # (numbered as one it got: not run twice)
    channel.send(**run_request(4, 4, "echo four", tmp_path, mark))
    fourth = channel.receive()
    assert (fourth["id"], fourth["seq"]) == (4, 4)
    channel.close_input()  # a second drop: an attach that processed everything gets nothing again
    again = bridge(point, seq=4)
    assert again.receive()["ev"] == "attached"
    assert events_until_pong(again) == []
    again.send(op="quit")
    assert again.process.wait(10) == 0  # the launcher said "bye": the bridge ends with it
    assert pipe.process.wait(10) == 0
    assert not Path(point["path"]).parent.exists()
    assert (tmp_path / "j3" / "stdout.txt").read_text() == "three\n"  # never run again
    assert not (tmp_path / "j3" / ".history").exists()


def test_launcher_refuses_a_wrong_token_and_waits_on(launcher: tuple[Pipe, dict[str, Any]]) -> None:
    pipe, point = launcher
    pipe.close_input()
    wrong = bridge(point, seq=0, token="f" * 32)
    assert wrong.receive() == {"ev": "refused", "message": "refused: wrong token"}
    assert wrong.process.wait(10) == 1
    right = bridge(point, seq=0)
    assert right.receive()["ev"] == "attached"
    right.send(op="quit")
    assert pipe.process.wait(10) == 0


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


def test_launcher_attach_point_cannot_be_used_by_another_user(launcher: tuple[Pipe, dict[str, Any]],
                                                              nobody_python: tuple[list[str], str, Path]) -> None:
    """nobody cannot enter the attach directory; its bridge refuses it even with the token; and were the
    directory open to it, the launcher would close its connection unheard (SO_PEERCRED)."""
    pipe, point = launcher
    user, python, launcher_file = nobody_python
    pipe.close_input()
    assert connect_as(user, python, point["path"]).stdout.split() == ["connect", "PermissionError"]
    theirs = bridge(point, seq=0, python=python, user=user, launcher_file=launcher_file)
    refused = theirs.receive()
    assert refused["ev"] == "refused" and "belongs to uid 0" in refused["message"], refused
    directory = Path(point["path"]).parent
    directory.chmod(0o755)
    Path(point["path"]).chmod(0o777)
    try:
        done = connect_as(user, python, point["path"])
        assert done.stdout.split() in (["answer", "b''"], ["answer", "closed"]), done  # closed unheard
    finally:
        directory.chmod(0o700)
    ours = bridge(point, seq=0)  # still waiting, for its own user only
    assert ours.receive()["ev"] == "attached"
    ours.send(op="quit")
    assert pipe.process.wait(10) == 0


def test_launcher_past_its_grace_stops_everything_and_leaves_no_attach_point(tmp_path: Path) -> None:
    pipe = Pipe([sys.executable, "-I", "-S", str(LAUNCHER)])
    pipe.send(op="hello", watchdog=60, reconnect=1, token=TOKEN)
    point = pipe.receive()["attach"]
    pipe.send(**run_request(1, 1, "sleep 600", tmp_path, os.urandom(6).hex()))
    time.sleep(0.3)
    pipe.close_input()
    assert pipe.process.wait(15) == 0
    record = json.loads((tmp_path / "j1" / "result.json").read_text())
    assert record["status"] == "cancelled"
    assert record["stopped"] == _launcher.ENDINGS["detached"] % 1
    assert not Path(point["path"]).parent.exists()
    late = bridge(point, seq=0)
    assert late.receive()["message"].startswith("the launcher cannot be reached: ")


def test_launcher_without_a_grace_stops_at_eof_and_makes_no_attach_point(tmp_path: Path) -> None:
    pipe = Pipe([sys.executable, "-I", "-S", str(LAUNCHER)])
    pipe.send(op="hello", watchdog=60)
    hello = pipe.receive()
    pipe.send(**dict(run_request(1, 1, "sleep 600", tmp_path, os.urandom(6).hex()), n=None))
    time.sleep(0.3)
    pipe.close_input()
    assert pipe.process.wait(15) == 0
    assert "attach" not in hello
    assert json.loads((tmp_path / "j1" / "result.json").read_text())["stopped"] == _launcher.ENDINGS["eof"]


def test_Journal_spills_to_a_file_and_replays_from_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_launcher, "JOURNAL_MEMORY", 1000)
    journal = _launcher.Journal(str(tmp_path))
    events = [b'{"seq":%d,"pad":"%s"}\n' % (n, b"x" * 90) for n in range(1, 101)]
    for event in events:
        journal.add(event)
    assert journal.fd is not None and journal.spilled  # most went to the file
    assert os.listdir(tmp_path) == []  # which has no name
    assert journal.since(40) == events[40:]
    journal.ack(95)
    assert journal.since(95) == events[95:] and os.fstat(journal.fd).st_size > 0
    journal.ack(100)
    assert not journal.spilled and os.fstat(journal.fd).st_size == 0
    journal.add(b"101\n")
    assert journal.since(0) == [b"101\n"]  # (acknowledged ones never come back)
    journal.close()


def test_Redelivery_numbers_what_must_arrive_and_sends_again_what_did_not() -> None:
    redelivery = Redelivery()
    lines = [redelivery.encode({"op": "run", "id": i}) for i in (1, 2, 3)]
    assert [json.loads(line)["n"] for line in lines] == [1, 2, 3]
    assert "n" not in json.loads(redelivery.encode({"op": "walk", "id": 4}))  # a transfer: never again
    assert redelivery.fresh({"ev": "exit", "id": 1, "seq": 1, "got": 1})
    assert not redelivery.fresh({"ev": "exit", "id": 1, "seq": 1, "got": 1})  # the same event twice
    assert json.loads(redelivery.encode({"op": "ping"}))["ack"] == 1
    assert redelivery.after(2) == lines[2:]
