"""What is posted to one launcher until it is written: by the engine's turn where it can, else by the
client's writer task (see ``_turn``, and ``LauncherClient.post``)."""

from __future__ import annotations

import os

import trio

from ._turn import NO_TURN, Turn


class Outbox:
    """What is posted to one launcher, in order, until it is written: all that one turn of the engine posted,
    in one write (a buffer and a wake-up: a memory channel cost 2-3 µs a message, and orjson's encodings kept
    alive by the dozen 1-2 µs each more than one appended and dropped). Within a turn (``_turn``) and on a
    stream that is a plain descriptor (``fd``), the turn writes it as it ends (``write_now``); else, and
    whatever the descriptor does not take then, the writer task does (``take``)."""

    __slots__ = ("parts", "closed", "_wake", "turn", "fd", "writing", "_deferred")

    def __init__(self, turn: Turn = NO_TURN, fd: int | None = None) -> None:
        self.parts: list[bytes | bytearray | memoryview] = []  # lines appended to one buffer; file data apart
        self.closed = False  # nothing more is taken; what is pending is still written
        self._wake = trio.Event()
        self.turn = turn
        self.fd = fd  # the stream's descriptor, while it is open (non-blocking: a Trio FdStream's)
        self.writing = False  # the writer task is in a write (which may wait for room): nothing goes beside it
        self._deferred = False  # the turn writes it as it ends

    def put(self, data: bytes, payload: bytes | memoryview | None = None) -> bool:
        """A line, and the file data that follows it (kept as it is: copied once, by ``take``); False once
        closed (dropped)."""
        if self.closed:
            return False
        parts = self.parts
        if parts and type(parts[-1]) is bytearray:
            parts[-1] += data
        else:
            parts.append(bytearray(data))
        if payload:
            parts.append(payload)
        if not self._deferred:
            if self.fd is not None and self.turn.defer(self):
                self._deferred = True
            else:
                self._wake.set()
        return True

    def write_now(self) -> None:
        """The turn's end: write what is pending straight to the descriptor, unless the writer task is in a
        write; what is not written then (the descriptor full, an error) is the writer task's."""
        self._deferred = False
        if self.parts and not self.writing and self.fd is not None:
            data = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
            try:
                written = os.write(self.fd, data)
            except OSError:  # (full: the writer waits for room; an error: the writer's write meets it too)
                written = 0
            self.parts = [data[written:]] if written < len(data) else []
        if self.parts:
            self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def take(self) -> bytes | None:
        """Everything put since the last take, joined; None once closed with nothing pending. The writer task
        is ``writing`` from then until it says otherwise: nothing may be written before what it took."""
        while not self.parts:
            if self.closed:
                return None
            await self._wake.wait()
            self._wake = trio.Event()
        parts, self.parts = self.parts, []
        self.writing = True
        return b"".join(parts)


def descriptor_of(stream: trio.abc.SendStream) -> int | None:
    """The descriptor of a stream that is one (a local launcher's pipe, srun's): written directly at the end of
    a turn; None for any other (an SSH channel)."""
    return stream.fileno() if isinstance(stream, trio.lowlevel.FdStream) else None
