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
from .._launcher import sweep_marks
from ._base import Streams, Transport, wait_for_exit

EXIT_WAIT = 10.0  # seconds a launcher that read EOF gets to stop its commands and exit, before SIGKILL


class LocalTransport(Transport):
    kind = "local"

    def plan_facts(self) -> dict[str, Any]:
        return {"logical_cores": os.cpu_count(), "home": os.path.expanduser("~"), "cwd": os.getcwd(),
                "numactl": "numactl", "cpus": sorted(os.sched_getaffinity(0)), "hostname": os.uname()[1]}

    @asynccontextmanager
    async def open(self, name: str) -> AsyncIterator[Streams]:
        """The launcher the CLI started early (see ``_prespawn``), or a new one: its stdin and stdout."""
        process = _prespawn.claim()
        if process is None:
            try:
                process = _prespawn.start_launcher()
            except OSError as exc:
                raise RunnerError(f"{self.describe(name)}: cannot start the launcher: {exc}") from exc
        try:
            async with launcher_streams(process) as streams:
                yield streams
        finally:
            relay_stderr(process)

    def lost(self, mark_prefix: str) -> None:
        """The launcher died unasked (OOM killer, kill -9). Its guardian stops what it left; should the
        guardian have died with it, the commands still carry this runner's mark, on this machine."""
        sweep_marks([mark_prefix], signal.SIGKILL, prefix=True)

    @property
    def local(self) -> bool:
        return True


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


@asynccontextmanager
async def launcher_streams(popen: subprocess.Popen[bytes]) -> AsyncIterator[Streams]:
    """Trio streams over a launcher child; on exit, EOF to it, then wait for it (or kill it)."""
    assert popen.stdin is not None and popen.stdout is not None
    send = trio.lowlevel.FdStream(os.dup(popen.stdin.fileno()))
    receive = trio.lowlevel.FdStream(os.dup(popen.stdout.fileno()))
    popen.stdin.close()
    popen.stdout.close()
    try:
        yield send, receive
    finally:
        with trio.CancelScope(shield=True):
            await send.aclose()  # EOF: the launcher stops whatever is left and exits
            if not await wait_for_exit(popen, EXIT_WAIT):
                popen.kill()
                popen.wait()
            await receive.aclose()
