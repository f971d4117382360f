"""A Slurm cluster reached over SSH (``goal.slurm(..., login=RUNNER_OR_HOST)``): Slurm's client commands and
the launchers' ``srun`` run on the login host, each as a session (a channel) of the login runner's one
connection -- nothing is installed there, no second connection is opened, no login shell is paid per poll
beyond the session's own command.

Cleanup does not depend on parallux: a *watcher* session on the login host (a shell reading job ids on
its stdin) cancels every job it was told of once its input ends -- the end of the connection, whichever way
it ended: the end of the run, a Ctrl-C, SIGKILL of parallux (the kernel closes its TCP connection, sshd
closes the sessions). sshd signals no process of a session without a terminal, so the watcher lives to read
that EOF. The launchers' sruns read EOF too and their launchers stop what they ran.
"""

from __future__ import annotations

import shlex
import signal
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import trio

from .._slurm._shell import STDERR_KEPT, Done, Missing, Shell, Spawned
from . import SshTransport
from ._channel import EXIT_WAIT, LauncherChannel, LauncherInput, LauncherOutput
from ._connect import reason
from ._patches import asyncssh

NOT_FOUND = 127  # a shell's exit status for a command it cannot find
SRUN_EXIT_WAIT = 10.0  # seconds an srun whose input ended gets to end its step, before its channel is closed
# The watcher: every line of its input is a job id; at the end of its input it cancels them all. (POSIX sh
# whatever the login shell is; its output goes nowhere, since no one reads it by then.)
WATCHER = ('ids=; while read -r id; do ids="$ids $id"; done; '
           '[ -z "$ids" ] || exec scancel $ids >/dev/null 2>&1')


class LoginShell(Shell):
    """Slurm's client commands on a login host, through an SSH runner's connection. ``engine``: the engine
    whose thread runs that connection's loop (its ``call``/``call_async`` from the main thread)."""

    def __init__(self, transport: SshTransport, engine: Any, runner: str) -> None:
        self._transport = transport
        self._engine = engine
        self.where = f"on the login host {transport.host} (runner {runner!r})"
        self._watcher: Any = None  # the watcher session's channel

    # -- one-shot commands -----------------------------------------------------------------------------------

    async def run(self, argv: list[str], stdin: str | None = None) -> Done:
        conn = self._connection()
        try:
            done = await self._transport.aio(conn.run)(shlex.join(argv), input=stdin, check=False,
                                                       encoding="utf-8", errors="replace")
        except (OSError, asyncssh.Error) as exc:
            raise OSError(f"{self.where}: {reason(exc)}") from None
        status = done.returncode if done.returncode is not None else -1
        if status == NOT_FOUND:
            raise Missing(argv[0])
        return Done(status, done.stdout or "", done.stderr or "")

    def run_now(self, argv: list[str], stdin: str | None = None, timeout: float = 60) -> Done:
        return self._engine.call_async(self._run_within, argv, stdin, timeout)

    async def _run_within(self, argv: list[str], stdin: str | None, timeout: float) -> Done:
        try:
            with trio.fail_after(timeout):
                return await self.run(argv, stdin)
        except trio.TooSlowError:
            raise TimeoutError(f"{argv[0]} did not answer within {timeout:g} s") from None

    # -- the watcher -----------------------------------------------------------------------------------------

    async def start_watcher(self) -> None:
        """The login host's watcher (engine thread, before the first job is submitted)."""
        conn = self._connection()
        try:
            channel, _ = await self._transport.aio(conn.create_session)(
                asyncssh.SSHClientSession, shlex.join(["sh", "-c", WATCHER]), encoding=None, request_pty=False)
        except (OSError, asyncssh.Error) as exc:
            raise OSError(f"{self.where}: cannot start the watcher that cancels its jobs: {reason(exc)}") from None
        self._watcher = channel

    def watch(self, job_id: str) -> None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:  # the main thread (goal.slurm()): the channel is the engine thread's
            self._engine.call(self._tell, job_id)
        else:
            self._tell(job_id)

    def _tell(self, job_id: str) -> None:
        if self._watcher is not None:
            try:
                self._watcher.write(f"{job_id}\n".encode())
            except (OSError, asyncssh.Error):
                pass  # (the connection is gone: the watcher has cancelled what it knew, the pilot ends the rest)

    # -- a launcher's srun -----------------------------------------------------------------------------------

    @asynccontextmanager
    async def spawn(self, argv: list[str]) -> AsyncIterator[Spawned]:
        conn = self._connection()
        try:
            _, pipe = await self._transport.aio(conn.create_session)(
                LauncherChannel, shlex.join(argv), encoding=None, request_pty=False)
        except (OSError, asyncssh.Error) as exc:
            raise OSError(reason(exc)) from None
        spawned = SshSpawned(pipe, f"srun {self.where}")
        try:
            yield spawned
        finally:
            with trio.CancelScope(shield=True):
                await spawned.streams[0].aclose()  # EOF: the launcher stops whatever is left and exits
                with trio.move_on_after(SRUN_EXIT_WAIT):
                    await pipe.closed.wait()
                if not pipe.closed.is_set():
                    pipe.channel.close()

    def _connection(self) -> Any:
        conn = self._transport.connection
        if conn is None:
            raise OSError(f"{self.where}: not connected")
        return conn


class SshSpawned(Spawned):
    def __init__(self, pipe: LauncherChannel, description: str) -> None:
        self._pipe = pipe
        self.streams = LauncherInput(pipe), SrunOutput(pipe, description)

    def returncode(self) -> int | None:
        pipe = self._pipe
        if pipe.exit_signal:
            number = getattr(signal, "SIG" + pipe.exit_signal.removeprefix("SIG"), None)
            return -int(number) if number is not None else -1
        return pipe.exit_status

    def stderr_lines(self) -> list[str]:
        lines = bytes(self._pipe.stderr).decode("utf-8", "replace").splitlines()
        return [line for line in lines if line.strip()][-STDERR_KEPT:]


class SrunOutput(LauncherOutput):
    """srun's stdout, the launcher's stream: its end waits (a little) for srun's exit status, which says
    how the launcher ended (``SlurmTransport.death``); only a connection lost breaks it."""

    async def _raise_if_broken(self) -> None:
        pipe = self._pipe
        with trio.move_on_after(EXIT_WAIT):
            await pipe.closed.wait()
        if pipe.lost is not None:
            raise trio.BrokenResourceError(f"{self._description}: {reason(pipe.lost)}")
