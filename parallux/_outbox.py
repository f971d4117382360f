"""What is posted to one launcher until it is written (see ``LauncherClient.post``)."""

from __future__ import annotations

import os

import trio


class Outbox:
    """What is posted to one launcher, in order, until it is written.

    On a stream that is a plain descriptor (``fd``: a local launcher's pipe, srun's) a request is written as
    it is posted, when nothing is pending and the writer task is not in a write: the launcher, on the other
    CPU, starts on the first command of a scheduling pass while the engine makes the next request and records
    the last: at 4 commands at once 62-66 µs a command against 72 with one write after each scheduling pass
    (``bench/dispatch.py --profile --layers none``; docs/design.md). What the descriptor does not take
    (full), and all of another stream's (an SSH channel: a packet per write), waits for the writer task
    (``take``), which writes all that one turn of the engine's loop posted in one write (a buffer and a
    wake-up: a memory channel cost 2-3 µs a message, and orjson's encodings kept alive by the dozen 1-2 µs
    each more than one appended and dropped)."""

    __slots__ = ("parts", "closed", "_wake", "fd", "writing")

    def __init__(self, fd: int | None = None) -> None:
        self.parts: list[bytes | bytearray | memoryview] = []  # lines appended to one buffer; file data apart
        self.closed = False  # nothing more is taken; what is pending is still written
        self._wake = trio.Event()
        self.fd = fd  # the stream's descriptor, while it is open (non-blocking: a Trio FdStream's)
        self.writing = False  # the writer task is in a write (which may wait for room): nothing goes beside it

    def put(self, data: bytes, payload: bytes | memoryview | None = None) -> bool:
        """A line, and the file data that follows it (kept as it is: copied once, by ``take``, if at all);
        False once closed (dropped)."""
        if self.closed:
            return False
        parts = self.parts
        if not parts and self.fd is not None and not self.writing:
            data = self._write(data)
            if payload and not data:
                payload = self._write(payload)
        if data:
            if parts and type(parts[-1]) is bytearray:
                parts[-1] += data
            else:
                parts.append(bytearray(data))
        if payload:
            parts.append(payload)
        if parts:
            self._wake.set()
        return True

    def _write(self, data: bytes | memoryview) -> bytes | memoryview:
        """Write as much of ``data`` as the descriptor takes now; what it did not."""
        try:
            written = os.write(self.fd, data)  # type: ignore[arg-type]
        except OSError:  # (full: the writer task waits for room; an error: its write meets it too)
            return data
        return data[written:] if written < len(data) else b""

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
    """The descriptor of a stream that is one (a local launcher's pipe, srun's), written to directly; None for
    any other (an SSH channel)."""
    return stream.fileno() if isinstance(stream, trio.lowlevel.FdStream) else None
