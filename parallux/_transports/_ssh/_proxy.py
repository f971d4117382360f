"""The ssh config's ProxyCommand, run by parallux itself."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import tempfile

from ..._errors import RunnerError
from .._base import wait_for_exit
from ._channel import EXIT_WAIT, STDERR_KEPT
from ._connect import reason

PROXY_LOST_WAIT = 0.5         # seconds to wait for a ProxyCommand's status after the connection ended


class ProxyCommand:
    """The ssh config's ProxyCommand (e.g. ``ssh -W %h:%p bastion``), run by parallux itself with one end of a
    socketpair as its stdin and stdout; asyncssh gets the other end as an already-connected socket.

    asyncssh could run it, but through trio-asyncio's child watcher, whose thread reports the command's exit
    to a Trio run that may have ended by then (a traceback at the end of every run). Run here, parallux
    owns its lifetime: it ends when the connection closes its socket, or is killed (its own session, so
    its whole group) if it lingers, and a failure says what the command printed and how it ended."""

    def __init__(self, argv: list[str], description: str) -> None:
        self.command = shlex.join(argv)
        ours, theirs = socket.socketpair()
        self.stderr = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(argv, stdin=theirs, stdout=theirs, stderr=self.stderr,
                                            start_new_session=True)
        except OSError as exc:
            ours.close()
            self.stderr.close()
            raise RunnerError(f"{description}: cannot connect: cannot start the ssh config's ProxyCommand "
                              f"`{self.command}`: {reason(exc)}") from None
        finally:
            theirs.close()
        self.socket = ours

    async def stop(self, wait: float) -> str:
        """Give the command ``wait`` seconds to end (the connection's end closes its input), then kill it;
        the end of what it printed."""
        self.socket.close()  # (the transport's close already did, unless connecting failed or was cancelled)
        if not await wait_for_exit(self.process, wait):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                pass
            self.process.wait()  # killed: at once
        with self.stderr:
            self.stderr.seek(0)
            return self.stderr.read()[-STDERR_KEPT:].decode("utf-8", "replace").strip()

    async def failure(self, why: str, lost: bool) -> str:
        """Why connecting failed: the ProxyCommand's failure if it had already failed, else ``why``; with the
        end of what it printed either way. ``lost``: the connection just ended, which a proxy's exit does a
        moment before its status can be read."""
        if lost:
            await wait_for_exit(self.process, PROXY_LOST_WAIT)
        status = self.process.poll()
        said = await self.stop(EXIT_WAIT)
        if status:  # it ended, and not well: the connection only saw its end
            ended = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
            return f"the ssh config's ProxyCommand `{self.command}` {ended}" + (f": {said}" if said else "")
        return why + (f"; the ssh config's ProxyCommand `{self.command}` said: {said}" if said else "")
