"""A launcher that may be reattached (an SSH runner's, see "reattaching" in _launcher.py), as a real subprocess.

The tests play both parallux and the new SSH channel: they start ``python -I -S _launcher.py`` with pipes,
say hello with a grace and a token, close its stdin (the channel drops), and attach through the launcher's own
bridge mode (``--attach``) started with pipes of its own, as sshd would start it for a new channel. A second
user is ``nobody`` (the tests run as root): ``setpriv`` runs the bridge, or a plain connect(), as that user.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parallux import _launcher
from tests.attach import LAUNCHER, TOKEN, Pipe, bridge, connect_as
from tests.attach import nobody_python  # noqa: F401


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
