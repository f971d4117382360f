"""The launcher's SSH channel as a pair of Trio streams.

asyncssh calls the channel's callbacks in the trio-asyncio loop, i.e. inside Trio in the engine thread, so
they feed Trio memory channels and events directly: no thread hop and no per-line round trip.
"""

from __future__ import annotations

import math
from typing import Any

import trio

from ._connect import reason
from ._patches import asyncssh

STDERR_KEPT = 8192            # bytes of the remote launcher's stderr kept for error messages
PRELUDE_LIMIT = 1 << 20       # login-shell chatter tolerated on stdout before the launcher's hello
HELLO_PREFIX = b'{"ev":"hello"'
HELLO_WAIT = 60.0             # seconds for a starting launcher to answer its first hello
EXIT_WAIT = 3.0               # how long to wait for the exit status of a launcher that stopped early (its
                              # guardian first stops what a killed launcher left: ~2 s at most)


class LauncherChannel(asyncssh.SSHClientSession):  # type: ignore[misc]
    """asyncssh's callbacks for the launcher's channel. They run in the trio-asyncio loop, i.e. inside Trio
    in the engine thread, so they may feed Trio objects directly."""

    def __init__(self) -> None:
        self._stdout_in, self.stdout = trio.open_memory_channel[bytes](math.inf)
        self.channel: Any = None
        self.stderr = bytearray()
        self.exit_status: int | None = None
        self.exit_signal: str | None = None
        self.lost: Exception | None = None  # why the connection closed under the channel, if it broke
        self.closed = trio.Event()
        self.writable = trio.Event()
        self.writable.set()

    def connection_made(self, chan: Any) -> None:
        self.channel = chan

    def data_received(self, data: bytes, datatype: Any) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            self.stderr += data
            del self.stderr[:-STDERR_KEPT]
        else:
            try:
                self._stdout_in.send_nowait(data)
            except trio.ClosedResourceError:  # data after EOF: nobody reads it any more
                pass

    def eof_received(self) -> bool:
        self._stdout_in.close()
        return False

    def exit_status_received(self, status: int) -> None:
        self.exit_status = status

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self.exit_signal = signal

    def pause_writing(self) -> None:
        self.writable = trio.Event()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc
        self._stdout_in.close()
        self.writable.set()
        self.closed.set()

    def stderr_text(self) -> str:
        return " ".join(self.stderr.decode("utf-8", "replace").split())[-2000:]


class LauncherInput(trio.abc.SendStream):
    """The launcher's stdin. Writes go straight into asyncssh's buffer; the window's back-pressure is
    honoured through pause_writing/resume_writing, so a batch costs one call, not a round trip."""

    def __init__(self, pipe: LauncherChannel) -> None:
        self._pipe = pipe

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._pipe.closed.is_set():
            raise trio.BrokenResourceError("the SSH channel is closed")
        try:
            self._pipe.channel.write(bytes(data))
        except OSError as exc:
            raise trio.BrokenResourceError(f"the SSH channel is closed: {exc}") from exc
        await self._pipe.writable.wait()

    async def wait_send_all_might_not_block(self) -> None:
        await self._pipe.writable.wait()

    async def aclose(self) -> None:
        """EOF on the launcher's stdin: it stops whatever is left and exits."""
        if not self._pipe.closed.is_set():
            try:
                self._pipe.channel.write_eof()
            except OSError:
                pass
        await trio.lowlevel.checkpoint()


class LauncherOutput(trio.abc.ReceiveStream):
    """The launcher's stdout. Anything a login shell prints before the launcher's hello (or another first
    event, ``starts``) is skipped; a dropped connection or a launcher that died ends the stream with
    BrokenResourceError saying why."""

    def __init__(self, pipe: LauncherChannel, description: str, starts: tuple[bytes, ...] = (HELLO_PREFIX,)) -> None:
        self._pipe = pipe
        self._description = description
        self._starts = starts
        self._pending = b""
        self._taken = 0  # bytes of _pending already returned (file data comes by the MiB: no re-slicing it)
        self._prelude: bytes | None = b""  # None once the hello was seen

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        limit = max_bytes or 1 << 16
        while self._taken >= len(self._pending):
            try:
                chunk = await self._pipe.stdout.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                await self._raise_if_broken()
                return b""
            self._pending, self._taken = self._past_prelude(b"".join([chunk, *self._more()])), 0
        if not self._taken and len(self._pending) <= limit:
            data, self._pending = self._pending, b""
            return data
        data = self._pending[self._taken:self._taken + limit]
        self._taken += len(data)
        return data

    async def hear_hello(self) -> str:
        """Ask the starting launcher for its hello and read it (past any login-shell chatter): "hello", or
        "ended" if the launcher ended first, or "silent" if nothing came within HELLO_WAIT. The client asks
        again when it takes the stream over."""
        try:
            self._pipe.channel.write(b'{"op":"hello"}\n')
        except OSError:
            return "ended"
        heard = await self.first_line(HELLO_WAIT)
        return heard if isinstance(heard, str) else "hello"

    async def first_line(self, seconds: float) -> bytes | str:
        """The first line past the prelude (anything after it stays the client's), or "ended" if the channel
        ended first, or "silent" if it did not come within ``seconds``."""
        line = b""
        with trio.move_on_after(seconds):
            try:
                while b"\n" not in line:
                    chunk = await self.receive_some()
                    if not chunk:
                        return "ended"
                    line += chunk
            except trio.BrokenResourceError:
                return "ended"
        if b"\n" not in line:
            return "silent"
        first, rest = line.split(b"\n", 1)
        self._pending, self._taken = rest + self._pending[self._taken:], 0
        return first

    def _more(self) -> list[bytes]:
        chunks = []
        while True:
            try:
                chunks.append(self._pipe.stdout.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return chunks

    def _past_prelude(self, data: bytes) -> bytes:
        if self._prelude is None:
            return data
        self._prelude += data
        found = [start for start in map(self._prelude.find, self._starts) if start >= 0]
        start = min(found, default=-1)
        if start < 0:
            if len(self._prelude) > PRELUDE_LIMIT:
                raise trio.BrokenResourceError("the remote login shell printed too much before the launcher")
            return b""
        data, self._prelude = self._prelude[start:], None
        return data

    async def _raise_if_broken(self) -> None:
        pipe = self._pipe
        if pipe.lost is None:
            with trio.move_on_after(EXIT_WAIT):
                await pipe.closed.wait()
        if pipe.lost is not None:
            raise trio.BrokenResourceError(f"{self._description}: {reason(pipe.lost)}")
        if pipe.exit_signal or pipe.exit_status:
            how = f"was killed by signal {pipe.exit_signal}" if pipe.exit_signal else f"exited with status " \
                f"{pipe.exit_status}"
            said = pipe.stderr_text()
            raise trio.BrokenResourceError(f"the launcher of {self._description} {how}"
                                           + (f": {said}" if said else ""))

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
