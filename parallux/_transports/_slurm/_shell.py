"""Where a Slurm runner's client commands run: on this machine (a login node, inside an allocation) --
:class:`LocalShell` -- or, with ``goal.slurm(login=...)``, on a login host over SSH (``_ssh._login``).

Everything parallux asks of Slurm goes through a shell: the one-shot commands (``sbatch``, ``squeue``,
``scancel``, ``scontrol``, ``sinfo``), each launcher's ``srun`` (a long-lived process whose stdin and stdout
are the launcher's stream) and the watcher that cancels a job once this parallux is gone.
"""

from __future__ import annotations

import os
import subprocess
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncContextManager, AsyncIterator

import trio

from .._base import Streams
from .._local import launcher_streams

STDERR_KEPT = 20  # lines of srun's stderr kept to explain a launcher's end


@dataclass
class Done:
    """A one-shot command's end."""

    returncode: int
    stdout: str
    stderr: str


class Missing(Exception):
    """The program is not installed where the shell runs it."""


class Spawned:
    """A long-lived command (a launcher's srun): its stdin and stdout as the launcher's stream."""

    streams: Streams

    def returncode(self) -> int | None:
        """Its exit status once it ended (-N: killed by signal N), else None."""
        raise NotImplementedError

    def stderr_lines(self) -> list[str]:
        """The last lines it wrote on its stderr."""
        raise NotImplementedError


class Shell:
    """Runs Slurm's client commands somewhere."""

    where = "here"  # for messages: "sbatch is not installed here"

    def run_now(self, argv: list[str], stdin: str | None = None, timeout: float = 60) -> Done:
        """From the main thread (``goal.slurm()``). Raises Missing, or TimeoutError after ``timeout``."""
        raise NotImplementedError

    async def run(self, argv: list[str], stdin: str | None = None) -> Done:
        """From the engine thread. Raises Missing, or OSError when it could not be run at all."""
        raise NotImplementedError

    def run_soon(self, argv: list[str]) -> None:
        """From the engine thread, without waiting for it (a job to cancel while the run goes on)."""
        trio.lowlevel.spawn_system_task(self._quietly, argv)

    async def _quietly(self, argv: list[str]) -> None:
        try:
            with trio.move_on_after(30):
                await self.run(argv)
        except (Missing, OSError):
            pass  # (the watcher cancels the job after the run)

    def watch(self, job_id: str) -> None:
        """Cancel the job once this parallux is gone, whichever way it went (SIGKILL too): a pilot still
        pending then would otherwise start later and hold its nodes for its grace."""
        raise NotImplementedError

    def spawn(self, argv: list[str]) -> AsyncContextManager[Spawned]:
        """Start a long-lived command; leaving the context closes its stdin and waits (a little) for it."""
        raise NotImplementedError


class LocalShell(Shell):
    """Slurm's client commands on this machine."""

    def run_now(self, argv: list[str], stdin: str | None = None, timeout: float = 60) -> Done:
        try:
            done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                                  stdin=None if stdin is not None else subprocess.DEVNULL)
        except FileNotFoundError:
            raise Missing(argv[0]) from None
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{argv[0]} did not answer within {timeout:g} s") from None
        return Done(done.returncode, done.stdout, done.stderr)

    async def run(self, argv: list[str], stdin: str | None = None) -> Done:
        try:
            done = await trio.run_process(argv, stdin=(stdin or "").encode(), capture_stdout=True,
                                          capture_stderr=True, check=False)
        except FileNotFoundError:
            raise Missing(argv[0]) from None
        return Done(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))

    def watch(self, job_id: str) -> None:
        """A shell in a session of its own, polling this parallux's pid; it ends a second after parallux
        does (the job cancelled already, after a normal end)."""
        script = f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; exec scancel {job_id}"
        try:
            subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        except OSError:
            pass  # (the pilot script still ends the job after its grace)

    @asynccontextmanager
    async def spawn(self, argv: list[str]) -> AsyncIterator[Spawned]:
        # its own session: the terminal's Ctrl-C is parallux's, and srun must never get a signal
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)
        spawned = LocalSpawned(process)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(spawned.keep_stderr)
            async with launcher_streams(process) as streams:
                spawned.streams = streams
                yield spawned


class LocalSpawned(Spawned):
    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self._stderr: deque[str] = deque(maxlen=STDERR_KEPT)

    def returncode(self) -> int | None:
        return self.process.poll()

    def stderr_lines(self) -> list[str]:
        return list(self._stderr)

    async def keep_stderr(self) -> None:
        assert self.process.stderr is not None
        stream = trio.lowlevel.FdStream(os.dup(self.process.stderr.fileno()))
        self.process.stderr.close()
        pending = b""
        async with stream:
            while chunk := await stream.receive_some(65536):
                *lines, pending = (pending + chunk).split(b"\n")
                self._stderr.extend(line.decode(errors="replace") for line in lines if line.strip())
