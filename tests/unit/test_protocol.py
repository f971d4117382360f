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
                            mark="m.1.1", record={})
        _, two = client.run(argv=["true"], env={}, work_dir=None, workspace=None, cwd=None, command_text="two",
                            mark="m.1.2", record={})
        assert [(r["id"], r["n"]) for r in (await first.request(), await first.request())] == [(1, 1), (2, 2)]
        await first.say(ev="exit", id=1, status="ok", seq=1, got=1)
        await first.to_client.aclose()  # the connection drops
        await trio.testing.wait_all_tasks_blocked()
        assert client.down == "the launcher exited" and client.gone is None
        assert one.ended.is_set() and not two.ended.is_set()
        client.kill(2, 2.0)
        second = LauncherDouble()
        await nursery.start(client.serve, (second.client_writes, second.client_reads,
                                           {"ev": "attached", "got": 1, "seq": 1}))
        again = [await second.request(), await second.request()]
        assert [(r["op"], r["id"], r["n"]) for r in again] == [("run", 2, 2), ("kill", 2, 3)]
        await second.say(ev="exit", id=1, status="ok", seq=1, got=3)  # (a replay of what came already)
        await second.say(ev="exit", id=2, status="cancelled", seq=2, got=3)
        await two.ended.wait()
        assert two.exit_event is not None and two.exit_event["status"] == "cancelled"
        assert client.redelivery.after(3) == [] and client.down is None
        nursery.cancel_scope.cancel()


async def test_file_data_follows_its_line_in_the_same_write_as_it_was_given() -> None:
    """A frame's data goes out right after its line, between the lines posted before and after it, in the
    one write of that turn (the outbox keeps it apart from the buffer of lines: copied once, when written)."""
    stream = RecordingStream()
    client = LauncherClient(stream, trio.testing.memory_stream_one_way_pair()[1], "test")
    data = bytes(range(256)) * 4096  # 1 MiB
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._write_loop)
        client.post({"op": "ping"})
        client.post({"op": "data", "id": 3}, memoryview(data))
        client.post({"op": "ping"})
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert stream.writes == [b'{"op":"ping"}\n{"op":"data","id":3,"bytes":1048576}\n' + data + b'{"op":"ping"}\n']


def test_a_template_is_numbered_to_arrive_as_the_runs_that_name_it() -> None:
    """A run request naming a template is no use without it: after a dropped connection the template is sent
    again if it was lost, as a run request is."""
    from parallux._redelivery import Redelivery

    redelivery = Redelivery()
    template = json.loads(redelivery.encode({"op": "template", "tpl": 1, "run": {}}))
    run = json.loads(redelivery.encode({"op": "run", "id": 1, "tpl": 1}))
    assert (template["n"], run["n"]) == (1, 2)
    assert [json.loads(line)["op"] for line in redelivery.after(0)] == ["template", "run"]
