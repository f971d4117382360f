"""A turn of the engine (``_turn``): the ends heard while a read of events is dispatched are settled as the
turn ends, in the reader's task. A request to a plain descriptor is written as it is posted (``_outbox``) --
never beside, nor before, what the writer task is writing. And the launcher writes the events of a long read's
first requests before it handles the rest (``REQUESTS_PER_WRITE``)."""

from __future__ import annotations

import fcntl
import json
import os

import trio
import trio.testing

from parallux import _launcher
from parallux._engine._ends import GroupEnds
from parallux._protocol import Job, LauncherClient
from parallux._turn import NO_TURN, Turn


def test_a_turn_settles_what_it_heard_once_as_its_outermost_hold_ends() -> None:
    settled: list[list[str]] = []
    turn = Turn(lambda heard: settled.append(list(heard)))
    assert not turn.hear("outside")  # (outside a turn: the group's own task must be woken)
    with turn:
        assert turn.hear("a")
        with turn:  # (a nested hold: the outer one settles)
            assert turn.hear("b")
        assert settled == []
    assert settled == [["a", "b"]]
    with NO_TURN:
        assert not NO_TURN.hear("x")  # (no one to settle: the group's task is woken)


def test_what_settling_hears_is_settled_in_the_same_turn() -> None:
    # (a launch to a launcher that is gone ends at once: its end is heard while the turn settles)
    settled: list[list[str]] = []

    def settle(heard: list[str]) -> None:
        settled.append(list(heard))
        if heard == ["first"]:
            assert turn.hear("heard while settling")

    turn = Turn(settle)
    with turn:
        turn.hear("first")
    assert settled == [["first"], ["heard while settling"]]


async def test_ends_heard_in_a_turn_do_not_wake_the_groups_task_and_others_do() -> None:
    settled: list[GroupEnds] = []
    turn = Turn(settled.extend)
    ends = GroupEnds(turn)
    jobs = [Job() for _ in range(3)]
    for job in jobs:
        ends.watch(job, ("command",))
    with turn:
        jobs[0].end()
        jobs[1].end()
    assert settled == [ends] and not ends._wake.is_set()  # one entry for both ends, no wake-up
    assert [ends.take(), ends.take(), ends.take()] == [("command",), ("command",), None]
    jobs[2].end()  # outside a turn (its launcher went away): the group's task is woken
    assert ends._wake.is_set() and settled == [ends]


def pipe(size: int = 4096) -> tuple[int, int]:
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, size)
    os.set_blocking(r, False)
    return r, w


def drain(fd: int) -> bytes:
    data = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


async def test_a_request_to_the_launchers_pipe_is_written_as_it_is_posted() -> None:
    r, w = pipe()
    send = trio.lowlevel.FdStream(w)
    client = LauncherClient(send, trio.testing.memory_stream_one_way_pair()[1], "test")
    # (no writer task runs in this test: the post itself wrote them)
    client.post({"op": "ping"})
    assert drain(r) == b'{"op":"ping"}\n'
    client.post({"op": "put", "id": 2}, payload=b"file data")
    assert drain(r) == b'{"op":"put","id":2,"bytes":9}\nfile data'
    await send.aclose()
    os.close(r)


async def test_a_post_never_writes_beside_or_before_what_the_writer_task_is_writing() -> None:
    # The writer task waits for room in a full pipe, with part of its data written; what is posted then must
    # go after the rest of it, by the writer task -- and what the pipe does not take at once too.
    r, w = pipe()
    send = trio.lowlevel.FdStream(w)
    client = LauncherClient(send, trio.testing.memory_stream_one_way_pair()[1], "test")
    big = {"op": "put", "pad": "x" * 10000}
    expected = b"".join(json.dumps(m, separators=(",", ":")).encode() + b"\n"
                        for m in (big, {"op": "ping"}, big, {"op": "quit"}))
    received = b""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._write_loop)
        client.post(big)
        await trio.testing.wait_all_tasks_blocked()
        assert client._outbox.writing  # (waiting for room, 4 KiB of 10 written)
        received += drain(r)  # (room again, before the writer task has run)
        client.post({"op": "ping"})
        client.post(big)
        while len(received) < len(expected) - len(b'{"op":"quit"}\n'):
            received += drain(r)
            await trio.sleep(0.01)
        await client.quit()
    received += drain(r)
    assert received == expected
    os.close(r)


async def test_nothing_is_written_to_the_descriptor_once_the_writer_closed_it() -> None:
    # (its number may belong to another file by then)
    r, w = pipe()
    other_r, other_w = pipe()
    client = LauncherClient(trio.lowlevel.FdStream(w), trio.testing.memory_stream_one_way_pair()[1], "test")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._write_loop)
        await client.quit()
    os.dup2(other_w, w)  # (another file now has the closed descriptor's number)
    outbox = client._outbox
    outbox.closed = False  # (a put after the end, were one to slip through)
    outbox.put(b'{"op":"ping"}\n')
    assert drain(other_r) == b"" and drain(r) == b'{"op":"quit"}\n'
    for fd in (r, w, other_r, other_w):
        os.close(fd)


def test_the_launcher_writes_the_events_of_a_long_reads_first_requests_before_it_handles_the_rest() -> None:
    infd, to_launcher = os.pipe()
    from_launcher, outfd = os.pipe()
    os.set_blocking(from_launcher, False)
    launcher = _launcher.Launcher.__new__(_launcher.Launcher)  # (no cgroups, no machine facts: its I/O only)
    launcher.infd, launcher.outfd, launcher.frames, launcher.outbuf = infd, outfd, _launcher.Frames(), []
    launcher.files, launcher.attachment, launcher.connected = _launcher.Files(launcher.send), None, True
    written_when: list[int] = []  # requests handled when events were written
    handled: list[int] = []
    launcher.reap = lambda: None  # (this process's children are not the launcher's)

    def handle(request: dict[str, object], payload: object = None) -> None:
        handled.append(int(request["id"]))  # type: ignore[call-overload]
        launcher.send({"ev": "exit", "id": request["id"]})

    def flush() -> None:
        written_when.append(len(handled))
        _launcher.Launcher.flush(launcher)

    launcher.handle, launcher.flush = handle, flush
    count = 2 * _launcher.REQUESTS_PER_WRITE + 3
    os.write(to_launcher, b"".join(b'{"op":"run","id":%d}\n' % n for n in range(count)))
    launcher.read_requests()
    assert handled == list(range(count))
    assert written_when == [_launcher.REQUESTS_PER_WRITE, 2 * _launcher.REQUESTS_PER_WRITE]
    events = [json.loads(line) for line in drain(from_launcher).splitlines()]
    assert [e["id"] for e in events] == list(range(2 * _launcher.REQUESTS_PER_WRITE))  # (the rest: the loop's)
    for fd in (infd, to_launcher, from_launcher, outfd):
        os.close(fd)
