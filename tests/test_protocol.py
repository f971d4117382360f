"""LauncherClient's sending path: what the engine posts in one turn of its loop goes out in one write, by
the writer task, in order; nothing after our end is closed. In-memory streams stand in for the launcher."""

from __future__ import annotations

import json

import trio
import trio.testing

from parallux._protocol import LauncherClient


class RecordingStream(trio.abc.SendStream):
    """The launcher's stdin: every ``send_all`` kept as it came."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if self.closed:
            raise trio.ClosedResourceError
        self.writes.append(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


MESSAGES = [{"op": "run", "id": n, "argv": ["sh", "-c", "echo %d" % n]} for n in range(1, 6)]
WIRE = b"".join((json.dumps(m, separators=(",", ":")) + "\n").encode() for m in MESSAGES)


async def test_what_one_turn_posts_goes_out_in_one_write_in_order() -> None:
    stream = RecordingStream()
    client = LauncherClient(stream, trio.testing.memory_stream_one_way_pair()[1], "test")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._write_loop)
        for message in MESSAGES:
            client.post(message)
        await trio.testing.wait_all_tasks_blocked()
        client.post({"op": "ping"})  # a later turn: a write of its own
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert stream.writes == [WIRE, b'{"op":"ping"}\n']


async def test_a_request_that_orjson_refuses_goes_out_as_json_writes_it() -> None:
    # A lone surrogate (an undecodable byte of a file name, through surrogateescape) is refused by orjson; the
    # request still goes, as the standard library writes it, and the launcher reads the same string back.
    stream = RecordingStream()
    client = LauncherClient(stream, trio.testing.memory_stream_one_way_pair()[1], "test")
    message = {"op": "run", "id": 1, "argv": ["sh", "-c", "cat \udcff"], "big": 2**70}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._write_loop)
        client.post(message)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert stream.writes == [(json.dumps(message, separators=(",", ":")) + "\n").encode()]
    assert json.loads(stream.writes[0]) == message


async def test_nothing_is_sent_after_our_end_is_closed() -> None:
    # After quit() -- once the writer task has closed the stream -- a late request (a second Ctrl-C's hard
    # quit, a keep-alive ping) is dropped, with no error.
    stream = RecordingStream()
    client = LauncherClient(stream, trio.testing.memory_stream_one_way_pair()[1], "test")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._write_loop)
        await client.quit()
        client.post({"op": "quit", "grace": 0})
        await trio.testing.wait_all_tasks_blocked()
    client.post({"op": "ping"})
    assert stream.writes == [b'{"op":"quit"}\n'] and stream.closed


async def test_a_request_after_the_reader_stopped_is_dropped() -> None:
    # A transfer cancelled on the way out tells its launcher to abort: if the read loop has already ended
    # (and closed the outbox) before the writer task noticed anything, that request is dropped, not raised
    # into the transfer's clean-up.
    send, _ = trio.testing.memory_stream_one_way_pair()
    _, from_launcher = trio.testing.memory_stream_one_way_pair()
    client = LauncherClient(send, from_launcher, "test")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._read_loop, nursery.cancel_scope)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    client.post({"op": "abort", "id": 3})
    assert client._closed
