"""Files between this machine and a runner: ``put``, ``get`` and ``read_file``, over the launcher's own stream.

A transfer is a short conversation with the runner's launcher (the requests are described in
``_launcher.py``, "files"), so it works over whatever carries the launcher -- a local pipe, an SSH channel,
``srun``'s stdio -- and needs nothing on the runner but the launcher. A put or a get goes:

1. **Manifests.** The source tree is walked (here with the launcher's own ``walk``, or by the launcher on
   the runner), and so is the destination, in one ``walk`` request streamed in pages.
2. **Quick check** (:func:`plan`, rsync's): a file whose size and mtime already match is skipped; one that
   only differs in mode gets its mode set; symlinks are compared by target.
3. **Data**, in frames of up to 512 KiB of raw bytes (small files many to a frame, a big file over several),
   written on the other side under a temporary name, never through a link, renamed when complete (a file
   that changed while it was read is sent again). A put keeps PUT_WINDOW frames unacknowledged; a get lets
   the launcher send GET_WINDOW frames ahead, granting more as they are written: a few MiB in memory at most.
4. **Finish**: symlinks, modes of unchanged files, then the directories' modes and mtimes, deepest first.

File I/O on this side runs in worker threads (``trio.to_thread``), one frame at a time, so that a slow
disk never stalls the engine's loop. Everything here runs in the engine thread; the runner's public
methods cross into it (``Runner.put``, ``Runner.get``, ``Runner.read_file``).
"""

from __future__ import annotations

import errno
import itertools
import os
import posixpath
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator, TypeVar

import trio

from ._errors import RunnerError
from ._exchange import Exchange, Planned
from ._launcher import AGAIN, CHUNK, TreeReader, TreeWriter, describe_os_error
from ._quickcheck import Entry, Failed, Manifest, Plan, local_manifest, plan, put_manifest

if TYPE_CHECKING:
    from ._engine._seat import Seat
    from ._protocol import LauncherClient, TransferEvent

Tell = Callable[["Transfer"], None]  # told of a transfer as it starts and as it ends (the progress display)

T = TypeVar("T")
PUT_WINDOW = 16   # data frames of a put sent ahead of their acks (8 MiB)
GET_WINDOW = 16   # data frames of a get the launcher may send ahead of their being written here
WALK_WINDOW = 4   # pages of a manifest (1000 entries each) the launcher may send ahead
BATCH = 4         # data frames read (put) or written (get) in one trip to a worker thread: the trips cost
SHOWN_AFTER = 1.0  # seconds a transfer runs before the progress display shows it
NOT_THERE_YET = " (not there yet: made by the run)"  # a dry run's put of what a planned command would make
DROPS_RETRIED = 3  # connections that may drop under one transfer (it is made again after each)


@dataclass(eq=False)
class Transfer:
    """What a ``put()`` or ``get()`` did: files (and symlinks) sent because they were missing or different,
    files skipped because their size and mtime already matched, and the bytes of file data sent."""

    files_sent: int = 0
    files_skipped: int = 0
    bytes_sent: int = 0
    # For the progress display while it runs (read by another thread; ints and floats only).
    _what: str = field(default="", repr=False, compare=False)
    _bytes_total: int = field(default=0, repr=False, compare=False)
    _started: float = field(default_factory=time.monotonic, repr=False, compare=False)
    _ended: float | None = field(default=None, repr=False, compare=False)
    _planned: bool = field(default=False, repr=False, compare=False)  # a dry run's: nothing was copied

    @property
    def _seconds(self) -> float:
        return (self._ended if self._ended is not None else time.monotonic()) - self._started


# -- the runner's operations (engine thread) ------------------------------------------------------------------

async def put(seat: Seat, source: str, target: str, tell: Tell,
              manifest: list[Entry] | None = None) -> Transfer:
    """Copy the local file or tree ``source`` to ``target`` (absolute) on the runner."""
    transfer = Transfer(_what=f"put {source} -> {seat.name}:{target}")
    with _shown(tell, transfer), _as_runner_error(seat, f"put {source} -> {target}"):
        await _again_after_drops(seat, lambda client: _put(seat, client, source, target, transfer, manifest))
    return transfer


async def _put(seat: Seat, client: LauncherClient, source: str, target: str, transfer: Transfer,
               manifest: list[Entry] | None) -> None:
    entries = manifest if manifest is not None else await _source(client, source, target, transfer)
    if entries[0].kind != "d" and target.endswith("/"):  # a file into that directory
        target = posixpath.join(target, os.path.basename(source.rstrip("/")))
    there = await remote_manifest(client, target, recursive=entries[0].kind == "d", follow=False,
                                  workspace=seat.workspace)
    if entries[0].kind != "d" and there and there[""].kind == "d":  # a file into an existing directory
        target = posixpath.join(target, os.path.basename(source.rstrip("/")))
        there = await remote_manifest(client, target, recursive=False, follow=False, workspace=seat.workspace)
    work = plan(entries, there or {})
    transfer.files_skipped, transfer._bytes_total = work.skipped, work.sizes
    if work.needed:
        await _send(client, source, target, work, transfer, seat.workspace)


async def get(seat: Seat, source: str, target: str, tell: Tell) -> Transfer:
    """Copy the file or tree ``source`` (absolute) on the runner to the local ``target``."""
    transfer = Transfer(_what=f"get {seat.name}:{source} -> {target}")
    with _shown(tell, transfer), _as_runner_error(seat, f"get {source} -> {target}"):
        await _again_after_drops(seat, lambda client: _get(client, source, target, transfer))
    return transfer


async def _get(client: LauncherClient, source: str, target: str, transfer: Transfer) -> None:
    there = await remote_manifest(client, source, recursive=True)
    if there is None:
        raise Failed(f"No such file or directory: {source}")
    root = there[""]
    if root.kind not in ("f", "d"):
        raise Failed(f"not a file or directory: {source}")
    if root.kind == "f" and (target.endswith("/") or os.path.isdir(target)):
        target = os.path.join(target, posixpath.basename(source.rstrip("/")))
    here = await _local(local_manifest, target, root.kind == "d", False, False)
    work = plan(list(there.values()), {entry.rel: entry for entry in here or ()})
    transfer.files_skipped, transfer._bytes_total = work.skipped, work.sizes
    if work.needed:
        await _receive(client, source, target, work, transfer)


async def read(seat: Seat, path: str) -> bytes:
    """A file of the runner's, whole (nothing in a dry run)."""
    with _as_runner_error(seat, f"cannot read {path}"):
        return await _again_after_drops(seat, lambda client: _read(client, path))
    raise AssertionError("unreachable")  # (for the type checker: _as_runner_error raises or returns)


async def _read(client: LauncherClient, path: str) -> bytes:
    data = bytearray()
    with Exchange(client, {"op": "get", "root": path, "files": [""], "window": GET_WINDOW, "chunk": CHUNK}) as exchange:
        while True:
            try:
                event, payload = await exchange.next()
            except Planned:
                return b""
            if event["ev"] == "end":
                return bytes(data)
            _append(data, event["parts"], payload or b"")
            exchange.post({"op": "credit", "frames": 1})


async def _again_after_drops(seat: Seat, attempt: Callable[[LauncherClient], Awaitable[T]]) -> T:
    """One transfer, made again whole when the connection dropped under it and came back (an SSH runner's,
    reattached): a put, a get or a read done twice is done once. Waits for a runner being reconnected."""
    for tries in itertools.count():
        await seat.wait_up(reconnected_only=True)
        client = _client(seat)
        drops = client.drops
        try:
            return await attempt(client)
        except Failed:
            if (client.drops == drops and client.down is None) or client.gone is not None or tries == DROPS_RETRIED:
                raise


async def put_everywhere(runners: list[tuple[Seat, ...]], source: str, target: str,
                         tell: Tell) -> dict[str, Transfer]:
    """``goal.put()``: the same local file or tree to every runner at once (to a Slurm runner's nodes in
    turn, see :func:`put_in_turn`), walked here once."""
    try:
        entries: list[Entry] | None = await _local(put_manifest, source)
    except Failed as exc:
        first = runners[0][0]
        there = remote_path(first, target)
        if not (exc.errno == errno.ENOENT and first.client and await _planned(first.client, there)):
            names = ", ".join(repr(seats[0].name) for seats in runners)
            raise RunnerError(f"goal.put({source!r}, {target!r}) to {names}: {exc}") from None
        entries = None  # a dry run: each put says the source is not there yet
    done: dict[str, Transfer] = {}
    failures: list[str] = []

    async def one(seats: tuple[Seat, ...]) -> None:
        try:
            done[seats[0].name] = await put_in_turn(seats, source, target, tell, entries)
        except RunnerError as exc:
            failures.append(str(exc))

    async with trio.open_nursery() as nursery:
        for seats in runners:
            nursery.start_soon(one, seats)
    if failures:
        raise RunnerError(failures[0] if len(failures) == 1 else
                          f"goal.put() failed on {len(failures)} of {len(runners)} runners:\n"
                          + "\n".join(f"  {failure}" for failure in failures))
    return {seats[0].name: done[seats[0].name] for seats in runners}


async def put_in_turn(seats: tuple[Seat, ...], source: str, target: str, tell: Tell,
                      manifest: list[Entry] | None = None) -> Transfer:
    """One runner's seats (a Slurm runner's nodes) one after another, each once its launcher is up, with
    ``target`` resolved on each: on a file system the nodes share, the quick check then skips on the others
    what the first one wrote. What was done, summed."""
    if len(seats) == 1 and seats[0].alive:
        return await put(seats[0], source, remote_path(seats[0], target), tell, manifest)
    total = Transfer(_what=f"put {source} -> {seats[0].name}:{target}")
    for seat in seats:
        await seat.wait_up()
        done = await put(seat, source, remote_path(seat, target), tell, manifest)
        total.files_sent += done.files_sent
        total.files_skipped += done.files_skipped
        total.bytes_sent += done.bytes_sent
        total._planned = total._planned or done._planned
        total._what += NOT_THERE_YET if done._what.endswith(NOT_THERE_YET) and seat is seats[0] else ""
    total._ended = time.monotonic()
    return total


async def _source(client: LauncherClient, source: str, target: str, transfer: Transfer) -> list[Entry]:
    """The local source's entries. One not there yet is no error in a dry run, where a command of the run
    would make it (build, then put what was built): a dry run's launcher answers ``planned``."""
    try:
        return await _local(put_manifest, source)
    except Failed as exc:
        if exc.errno == errno.ENOENT and await _planned(client, target):
            transfer._what += NOT_THERE_YET
            raise Planned() from None
        raise


async def _planned(client: LauncherClient, target: str) -> bool:
    """Whether the launcher is a dry run's, which answers every transfer ``planned`` (``_transports._plan``)."""
    try:
        await remote_manifest(client, target, recursive=False)
    except (Planned, Failed) as exc:
        return isinstance(exc, Planned)
    return False


# -- the destination's manifest ----------------------------------------------------------------------------

async def remote_manifest(client: LauncherClient, root: str, recursive: bool,
                          follow: bool = True, workspace: str | None = None) -> Manifest | None:
    """The entries of a file or tree on the runner, by relpath (None if it does not exist); ``follow``
    False: a destination's (see ``_launcher.walk``), below ``workspace`` its root never followed."""
    entries: Manifest = {}
    request = {"op": "walk", "root": root, "recursive": recursive, "follow": follow, "window": WALK_WINDOW,
               "workspace": workspace}
    with Exchange(client, request) as exchange:
        try:
            while True:
                event, _ = await exchange.next()
                if event["ev"] == "end":
                    return entries
                for item in event["entries"]:
                    entries[item[0]] = Entry(*item)
                exchange.post({"op": "credit", "frames": 1})
        except Failed as exc:
            if exc.errno == errno.ENOENT and not entries:  # the root itself: nothing there yet
                return None
            raise


# -- data ---------------------------------------------------------------------------------------------------

async def _send(client: LauncherClient, source: str, target: str, work: Plan, transfer: Transfer,
                workspace: str) -> None:
    """Put: the dirs and files of the plan, with at most PUT_WINDOW data frames unacknowledged (the writer
    follows no link below ``workspace``)."""
    reader = TreeReader(os.fsencode(source), [item[0] for item in work.files], CHUNK)
    with Exchange(client, {"op": "put", "root": target, "dirs": work.dirs, "files": work.files,
                                   "workspace": workspace}) as exchange:
        in_flight = 0
        try:
            while frames := await _local(_read_batch, reader):
                for parts, payload in frames:
                    if in_flight == PUT_WINDOW:
                        await _acked(exchange)
                        in_flight -= 1
                    exchange.post({"op": "data", "parts": parts}, payload)
                    in_flight += 1
                    transfer.bytes_sent += len(payload)
                    transfer.files_sent += sum(part[2] is True for part in parts)
        finally:
            reader.close()
        for _ in range(in_flight):
            await _acked(exchange)
        exchange.post({"op": "finish", "links": work.links, "attrs": work.attrs, "dirs": work.dirs})
        event, _ = await exchange.next()
        if event["ev"] != "end":
            raise Failed(f"unexpected {event['ev']!r} from the launcher")
    transfer.files_sent += len(work.links)


def _read_batch(reader: TreeReader) -> list[tuple[list[list[Any]], bytes]]:
    frames = []
    while len(frames) < BATCH and (frame := reader.next_frame()) is not None:
        frames.append(frame)
    return frames


def _append(data: bytearray, parts: list[list[Any]], payload: bytes) -> None:
    """A frame of a file read whole; a part AGAIN (it changed while it was read) drops what came before."""
    offset = 0
    for _, length, last in parts:
        if last == AGAIN:
            data.clear()
        data += payload[offset:offset + length]
        offset += length


def _write_frames(writer: TreeWriter, frames: list[TransferEvent]) -> None:
    for event, payload in frames:
        writer.write(event["parts"], payload or b"")


async def _acked(exchange: Exchange) -> None:
    event, _ = await exchange.next()
    if event["ev"] != "ack":
        raise Failed(f"the launcher ended the transfer early ({event['ev']!r})")


async def _receive(client: LauncherClient, source: str, target: str, work: Plan, transfer: Transfer) -> None:
    """Get: the dirs and files of the plan, written here as their frames arrive."""
    writer = TreeWriter(os.fsencode(target), work.files)
    try:
        await _local(writer.make_dirs, work.dirs)
        if work.files:
            request = {"op": "get", "root": source, "files": [item[0] for item in work.files],
                       "window": GET_WINDOW, "chunk": CHUNK}
            with Exchange(client, request) as exchange:
                ended = False
                while not ended:
                    frames: list[TransferEvent] = []
                    while len(frames) < BATCH and not ended:  # (the launcher has GET_WINDOW > BATCH to send)
                        frames += [await exchange.next(), *exchange.ready()]
                        ended = frames[-1][0]["ev"] == "end"
                    frames = frames[:-1] if ended else frames
                    await _local(_write_frames, writer, frames)
                    if not ended:
                        exchange.post({"op": "credit", "frames": len(frames)})
                    transfer.bytes_sent += sum(len(payload or b"") for _, payload in frames)
                    transfer.files_sent += sum(part[2] is True for event, _ in frames for part in event["parts"])
        await _local(writer.finish, work.links, work.attrs, work.dirs)
        transfer.files_sent += len(work.links)
    except BaseException:
        writer.abort()  # (a few closes and unlinks: no need to leave the loop for them)
        raise


# -- helpers --------------------------------------------------------------------------------------------------

def _client(seat: Seat) -> LauncherClient:
    client = seat.client
    if client is None or client.gone is not None:
        raise Failed("the runner is not connected" + (f" ({client.gone})" if client and client.gone else ""))
    return client


async def _local(fn: Callable[..., T], *args: Any) -> T:
    """Local file I/O, in a worker thread; an OSError becomes Failed naming the path."""
    def call() -> T:
        try:
            return fn(*args)
        except OSError as exc:
            raise Failed(describe_os_error(exc), exc.errno) from None
        except ValueError as exc:  # (a relpath from the runner that would leave the tree)
            raise Failed(str(exc)) from None
    return await trio.to_thread.run_sync(call)


@contextmanager
def _as_runner_error(seat: Seat, what: str) -> Iterator[None]:
    try:
        yield
    except Failed as exc:
        raise RunnerError(f"{seat.describe()}: {what}: {exc}") from None


@contextmanager
def _shown(tell: Tell, transfer: Transfer) -> Iterator[None]:
    """Tell the progress display that a transfer runs, then that it ended; a dry run's copies nothing."""
    tell(transfer)
    try:
        yield
    except Planned:
        transfer._planned = True
    finally:
        transfer._ended = time.monotonic()
        tell(transfer)


# -- remote paths -------------------------------------------------------------------------------------------

def remote_path(seat: Seat, text: str) -> str:
    """A path on the seat's runner made absolute: relative ones are in its workspace, ``~`` is its home."""
    return resolve_remote(text, seat.view.workspace, seat.view.home)


def resolve_remote(text: str, workspace: str, home: str) -> str:
    """A remote path made absolute: ``~`` is the runner's home, a relative path is in its workspace."""
    if text == "~" or text.startswith("~/"):
        text = home + text[1:]
    absolute = posixpath.normpath(posixpath.join(workspace, text))
    return absolute + "/" if text.endswith("/") and absolute != "/" else absolute
