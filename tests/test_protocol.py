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


class LauncherDouble:
    """The launcher's end of one channel: the requests it read (lines), and a way to answer."""

    def __init__(self) -> None:
        self.to_client, self.client_reads = trio.testing.memory_stream_one_way_pair()
        self.client_writes, self.from_client = trio.testing.memory_stream_one_way_pair()
        self.buffer = b""

    async def request(self) -> dict[str, object]:
        while b"\n" not in self.buffer:
            self.buffer += await self.from_client.receive_some()
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    async def say(self, **event: object) -> None:
        await self.to_client.send_all((json.dumps(event) + "\n").encode())


async def test_a_reattached_launcher_gets_again_what_it_missed_and_nothing_twice() -> None:
    # The connection drops after two run requests went out, of which the launcher got only the first; a kill
    # is posted meanwhile. On the new channel the second run and the kill go again, in order; an event the
    # launcher sends twice (a replay of one already processed) is taken once; the jobs waited throughout.
    first = LauncherDouble()
    client = LauncherClient(first.client_writes, first.client_reads, "test")
    client.may_resume = lambda: True
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.serve)
        assert (await first.request())["op"] == "hello"
        await first.say(ev="hello", attach={"path": "/x", "pid": 1})
        await trio.testing.wait_all_tasks_blocked()
        assert client.redelivery is not None
        _, one = client.run(argv=["true"], env={}, work_dir=None, workspace=None, cwd=None, command_text="one",
                            wrapped="one", mark="m.1.1", record={})
        _, two = client.run(argv=["true"], env={}, work_dir=None, workspace=None, cwd=None, command_text="two",
                            wrapped="two", mark="m.1.2", record={})
        assert [(r["id"], r["n"]) for r in (await first.request(), await first.request())] == [(1, 1), (2, 2)]
        await first.say(ev="exit", id=1, status="ok", seq=1, got=1)
        await first.to_client.aclose()  # the connection drops
        await trio.testing.wait_all_tasks_blocked()
        assert client.down == "the launcher exited" and client.gone is None
        assert one.ended.is_set() and not two.ended.is_set()
        client.kill(2, 2.0)
        second = LauncherDouble()
        await nursery.start(client.serve, (second.client_writes, second.client_reads, None,
                                           {"ev": "attached", "got": 1, "seq": 1}))
        again = [await second.request(), await second.request()]
        assert [(r["op"], r["id"], r["n"]) for r in again] == [("run", 2, 2), ("kill", 2, 3)]
        await second.say(ev="exit", id=1, status="ok", seq=1, got=3)  # (a replay of what came already)
        await second.say(ev="exit", id=2, status="cancelled", seq=2, got=3)
        await two.ended.wait()
        assert two.exit_event is not None and two.exit_event["status"] == "cancelled"
        assert client.redelivery.after(3) == [] and client.down is None
        nursery.cancel_scope.cancel()
