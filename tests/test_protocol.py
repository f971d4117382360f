"""LauncherClient's sending path: direct writes when the transport takes them, the writer task otherwise,
and never a reordering between the two. In-memory streams stand in for the launcher."""

from __future__ import annotations

import json

import trio
import trio.testing

from parallux._protocol import LauncherClient


class ChokingTransport:
    """A ``write_now`` that takes ``budget`` bytes, says once that it would block, then takes everything."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.written = b""

    def __call__(self, data: bytes) -> int:
        if self.budget <= 0:
            self.budget = 10**9  # room again: a post that skipped the queue would now overtake it
            raise BlockingIOError("full")
        taken = data[:self.budget]
        self.budget -= len(taken)
        self.written += taken
        return len(taken)


async def sent_through(budget: int | None, messages: list[dict[str, object]]) -> tuple[bytes, bytes]:
    """(what went out directly, what the writer task sent) after posting the messages."""
    send, receive = trio.testing.memory_stream_one_way_pair()
    transport = ChokingTransport(budget) if budget is not None else None
    client = LauncherClient(send, trio.testing.memory_stream_one_way_pair()[1], "test", transport)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._write_loop)
        for message in messages:
            client.post(message)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    queued = b""
    while chunk := await receive.receive_some():  # the writer task closed the stream when it was cancelled
        queued += chunk
    return (transport.written if transport else b""), queued


MESSAGES = [{"op": "run", "id": n, "argv": ["sh", "-c", "echo %d" % n]} for n in range(1, 6)]
WIRE = b"".join((json.dumps(m, separators=(",", ":")) + "\n").encode() for m in MESSAGES)


async def test_post_writes_directly_when_the_transport_takes_everything() -> None:
    direct, queued = await sent_through(10**6, MESSAGES)
    assert direct == WIRE and queued == b""


async def test_post_queues_the_rest_in_order_once_the_transport_is_full() -> None:
    # The first message goes out partly: its rest, and every later message, must follow through the writer
    # task, in order -- even after the transport has room again.
    direct, queued = await sent_through(20, MESSAGES)
    assert direct == WIRE[:20]
    assert direct + queued == WIRE


async def test_post_without_a_direct_path_uses_the_writer_task() -> None:
    direct, queued = await sent_through(None, MESSAGES)
    assert direct == b"" and queued == WIRE


async def test_nothing_is_sent_after_our_end_is_closed() -> None:
    # After quit() -- and once the writer task has closed the stream, whose fd number may then be reused by
    # another file -- a late request (a second Ctrl-C's hard quit, a keep-alive ping) is dropped: no direct
    # write, no error.
    send, receive = trio.testing.memory_stream_one_way_pair()
    transport = ChokingTransport(10**6)
    client = LauncherClient(send, trio.testing.memory_stream_one_way_pair()[1], "test", transport)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._write_loop)
        await client.quit()
        client.post({"op": "quit", "grace": 0})
        await trio.testing.wait_all_tasks_blocked()
    client.post({"op": "ping"})
    assert transport.written == b'{"op":"quit"}\n'


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
