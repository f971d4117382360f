"""Local runners: the launcher is a child process, driven over its pipes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import trio

from .. import _prespawn
from .._errors import RunnerError
from .._launcher import MachineFacts, machine_of, sweep_marks
from ._base import Pipe, Streams, Transport, ended_how, wait_for_exit

EXIT_WAIT = 10.0  # seconds a launcher that read EOF gets to stop its commands and exit, before SIGKILL
DEATH_WAIT = 3.0  # seconds the guardian of a launcher that died gets to stop what it left (and exit), so that
                  # its exit status says how the launcher died (see _launcher.sweep_after: ~2 s at most)


class LocalTransport(Transport):
    """The launcher is a child; one that dies (OOM killer, kill -9, its pipe closed) is replaced by a new
    child when the seat opens it again (within the bounds of ``_lifeline.Restarts``, the seat's)."""

    kind = "local"

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None  # the current launcher's guardian, once started
        # The first launcher's environment and directory, which it gives its commands: a new one's too, whatever
        # the config changed since.
        self._started_in: tuple[dict[str, str], str] | None = None

    def plan_facts(self, root: str | None = None) -> dict[str, Any]:
        cpus = sorted(os.sched_getaffinity(0))
        return {"logical_cores": os.cpu_count(), "home": os.path.expanduser("~"), "cwd": os.getcwd(),
                "numactl": "numactl", "cpus": cpus, "hostname": os.uname()[1],
                **machine_of(MachineFacts(root), cpus)}  # this machine, as its launcher would see it

    @asynccontextmanager
    async def open(self, name: str) -> AsyncIterator[Pipe]:
        """The launcher the CLI started early (see ``_prespawn``), or a new one: its stdin and stdout."""
        self._process = process = None  # (until it starts: how the last one died is not this one's)
        if self._started_in is None:
            self._started_in = dict(os.environ), os.getcwd()
            process = _prespawn.claim()
        if process is None:
            try:
                process = _prespawn.start_launcher(*self._started_in)
            except OSError as exc:
                raise RunnerError(f"{self.describe(name)}: cannot start the launcher: {exc}") from exc
        self._process = process
        try:
            async with launcher_streams(process) as (send, receive):
                yield Pipe(send, receive, death=self._death, ended=self._ended)
        finally:
            relay_stderr(process)

    @staticmethod
    def _ended(mark_prefix: str) -> None:
        """The launcher died unasked (OOM killer, kill -9). Its guardian stops what it left; should the
        guardian have died with it, the commands still carry this runner's mark, on this machine. Swept
        here, before a new launcher starts commands with the same marks' beginning."""
        sweep_marks([mark_prefix], signal.SIGKILL, prefix=True)

    def _death(self) -> str | None:
        return ended_how(self._process.poll()) if self._process is not None else None


def relay_stderr(process: subprocess.Popen[bytes]) -> None:
    """What an ended launcher wrote on its stderr (a file: see ``_prespawn.start_launcher``), on parallux's."""
    said = process.stderr
    assert said is not None
    with said:
        said.seek(0)
        text = said.read().decode(errors="replace")
    if text:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):  # the terminal is gone
            pass


class ExitReporting(trio.abc.ReceiveStream):
    """The launcher's stdout, whose end waits (a little) for the child's exit: a launcher that died is
    reported with how it died (``Pipe.death``), not as a launcher that merely exited."""

    def __init__(self, stream: trio.abc.ReceiveStream, process: subprocess.Popen[bytes]) -> None:
        self._stream = stream
        self._process = process

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        data = await self._stream.receive_some(max_bytes)
        if not data:
            await wait_for_exit(self._process, DEATH_WAIT)
        return data

    async def aclose(self) -> None:
        await self._stream.aclose()


@asynccontextmanager
async def launcher_streams(popen: subprocess.Popen[bytes]) -> AsyncIterator[Streams]:
    """Trio streams over a launcher child; on exit, EOF to it, then wait for it (or kill it)."""
    assert popen.stdin is not None and popen.stdout is not None
    send = trio.lowlevel.FdStream(os.dup(popen.stdin.fileno()))
    receive = trio.lowlevel.FdStream(os.dup(popen.stdout.fileno()))
    popen.stdin.close()
    popen.stdout.close()
    try:
        yield send, ExitReporting(receive, popen)
    finally:
        with trio.CancelScope(shield=True):
            await send.aclose()  # EOF: the launcher stops whatever is left and exits
            if not await wait_for_exit(popen, EXIT_WAIT):
                popen.kill()
                popen.wait()
            await receive.aclose()
