"""Files on runners as plain code: the quick check (what to skip, what to send), the launcher's frames and their
flow control (with an in-memory launcher where it matters how many frames are in flight), and the progress a
transfer shows.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import trio
import trio.testing

from parallux import _launcher, _transfer
from parallux._launcher import Files, Frames
from parallux._progress import PlainReporter, Progress
from parallux._protocol import LauncherClient
from parallux._quickcheck import Entry, plan, same_time
from parallux._transfer import Transfer


def entry(rel: str, kind: str = "f", size: int = 3, mtime: int = 5_000_000_000, mode: int = 0o644,
          target: str | None = None) -> Entry:
    return Entry(rel, kind, size, mtime, mode, target)


def test_plan_skips_what_matches_and_sends_what_changed() -> None:
    source = [entry("", "d", 0, mode=0o755), entry("same"), entry("newer", mtime=6_000_000_000),
              entry("bigger", size=4), entry("mode", mode=0o755), entry("new"),
              entry("sub", "d", 0, mode=0o700), entry("sub/x"), entry("link", "l", 0, target="same")]
    target = {"": entry("", "d", 0, mode=0o755), "same": entry("same"), "newer": entry("newer"),
              "bigger": entry("bigger"), "mode": entry("mode"), "link": entry("link", "l", 0, target="same"),
              "extra": entry("extra")}
    work = plan(source, target)
    assert [f[0] for f in work.files] == ["bigger", "new", "newer", "sub/x"]
    assert work.sizes == 3 + 4 + 3 + 3
    assert work.attrs == [["mode", 0o755, 5_000_000_000]]
    assert work.links == []
    assert work.skipped == 3  # same, mode (data unchanged), link
    # "" holds changed files: its mtime is set again at the end; "sub" is new
    assert [d[0] for d in work.dirs] == ["", "sub"]
    assert not plan(source, {e.rel: e for e in source}).needed


def test_same_time_falls_back_to_seconds_only_where_a_side_keeps_seconds() -> None:
    assert same_time(1_500_000_000_123_456_789, 1_500_000_000_123_456_789)
    assert same_time(1_500_000_000_123_456_789, 1_500_000_000_000_000_000)
    assert not same_time(1_500_000_000_123_456_789, 1_500_000_000_123_456_788)
    assert not same_time(1_500_000_000_000_000_000, 1_501_000_000_000_000_000)


def test_Frames_reassembles_lines_and_payloads_however_the_stream_is_cut() -> None:
    wire = (b'{"ev":"a"}\n{"ev":"data","bytes":5}\nab\ncd\n\n{"ev":"data","bytes":0}\n'
            b'{"ev":"b"}\nnot json\n')
    expected = [({"ev": "a"}, None), ({"ev": "data", "bytes": 5}, b"ab\ncd"),
                ({"ev": "data", "bytes": 0}, b""), ({"ev": "b"}, None)]
    for size in (1, 2, 3, 7, len(wire)):
        frames = Frames()
        got = [m for i in range(0, len(wire), size) for m in frames.feed(wire[i:i + size])]
        assert got[:4] == expected, size
        assert isinstance(got[4][0], ValueError) and len(got) == 5


def test_Frames_splits_reads_of_plain_lines_at_once_however_they_are_cut() -> None:
    """A read that holds no frame and continues no line (how events arrive) is split at once
    (``plain_lines``): the same messages as line by line, a line cut between reads joined, a blank one
    skipped, a bad one a ValueError in its place."""
    lines = [{"ev": "exit", "id": n, "status": "ok", "text": "x" * n} for n in range(40)]
    wire = b"".join(json.dumps(line).encode() + b"\n" for line in lines[:20]) + b" \nnot json\n" + \
        b"".join(json.dumps(line).encode() + b"\n" for line in lines[20:])
    for size in (1, 5, 64, 1000, len(wire)):
        frames = Frames()
        got = [m for i in range(0, len(wire), size) for m in frames.feed(wire[i:i + size])]
        assert [m for m, _ in got if not isinstance(m, ValueError)] == lines, size
        assert isinstance(got[20][0], ValueError) and len(got) == 41 and all(p is None for _, p in got)


def test_launcher_get_sends_only_the_frames_it_was_given_credit_for(tmp_path: Path) -> None:
    # What keeps the launcher's output (and memory) bounded whatever the file size.
    (tmp_path / "big").write_bytes(b"x" * (10 * _launcher.CHUNK))
    sent: list[tuple[dict[str, Any], bytes | None]] = []
    files = Files(lambda event, payload=None: sent.append((event, payload)))
    files.handle({"op": "get", "id": 1, "root": str(tmp_path / "big"), "files": [""], "window": 2}, None)
    assert [event["ev"] for event, _ in sent] == ["data", "data"]
    files.handle({"op": "credit", "id": 1, "frames": 3}, None)
    assert len(sent) == 5 and all(len(payload or b"") == _launcher.CHUNK for _, payload in sent)
    files.handle({"op": "credit", "id": 1, "frames": 100}, None)
    assert [event["ev"] for event, _ in sent[-2:]] == ["data", "end"] and len(sent) == 11
    assert sent[-2][0]["parts"] == [[0, _launcher.CHUNK, True]]


async def test_put_keeps_at_most_a_window_of_frames_unacknowledged(tmp_path: Path) -> None:
    source = tmp_path / "big"
    source.write_bytes(b"y" * (3 * _transfer.PUT_WINDOW * _launcher.CHUNK))
    to_launcher, from_client = trio.testing.memory_stream_pair()
    client = LauncherClient(to_launcher, to_launcher, "test runner")
    seat = SimpleNamespace(client=client, name="test", describe=lambda: "runner 'test'", workspace="/remote",
                           wait_up=lambda reconnected_only=False: trio.lowlevel.checkpoint())
    seen: list[dict[str, Any]] = []

    async def launcher_that_never_acks() -> None:
        frames = Frames()
        while chunk := await from_client.receive_some():
            for request, _ in frames.feed(chunk):
                seen.append(request)
                if request["op"] == "walk":  # nothing there yet
                    line = {"ev": "end", "id": request["id"], "error": "No such file", "errno": 2}
                    await from_client.send_all(json.dumps(line).encode() + b"\n")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._write_loop)
        nursery.start_soon(client._read_loop, nursery.cancel_scope)
        nursery.start_soon(launcher_that_never_acks)
        nursery.start_soon(_transfer.put, seat, str(source), "/remote/big", lambda transfer: None)
        with trio.fail_after(10):
            while len(seen) < 2 + _transfer.PUT_WINDOW:
                await trio.sleep(0.01)
        await trio.sleep(0.2)  # (any worker thread still reading ends)
        await trio.testing.wait_all_tasks_blocked()
        assert [r["op"] for r in seen] == ["walk", "put"] + ["data"] * _transfer.PUT_WINDOW
        nursery.cancel_scope.cancel()


def test_plain_progress_shows_a_transfer_that_took_more_than_a_second() -> None:
    progress = Progress()
    stream = io.StringIO()
    PlainReporter(progress, verbose=False, quiet=False, interval=0, stream=stream)
    quick = Transfer(files_sent=1, bytes_sent=10, _what="put /a -> r:/a")
    quick._ended = quick._started + 0.1
    slow = Transfer(files_sent=3, bytes_sent=5 << 20, _what="put /b -> r:/b")
    slow._started -= 2.5
    progress.transfer(slow)
    assert progress.transfers == [slow]
    for transfer in (quick, slow):
        transfer._ended = transfer._ended or time.monotonic()
        progress.transfer(transfer)
    assert progress.transfers == []
    assert stream.getvalue().splitlines() == ["parallux: put /b -> r:/b: 3 files, 5.0 MiB in 2.5 s"]


def test_live_display_shows_a_transfer_running_for_more_than_a_second() -> None:
    from rich.console import Console

    from parallux._live import LiveReporter
    progress = Progress()
    reporter = LiveReporter(progress)
    running = Transfer(bytes_sent=1 << 20, _what="put /b -> r:/b", _bytes_total=4 << 20)
    running._started -= 1.5
    just_started = Transfer(_what="put /c -> r:/c")
    for transfer in (running, just_started):
        progress.transfer(transfer)
    out = io.StringIO()
    Console(file=out, width=200).print(reporter.render())
    assert "put /b -> r:/b: 1.0 MiB of 4.0 MiB, 1.5 s" in out.getvalue()
    assert "/c" not in out.getvalue()
