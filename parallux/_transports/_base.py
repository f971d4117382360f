"""The seam every kind of runner implements: a transport to a launcher."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass, field
from typing import Any, AsyncContextManager, Awaitable, Callable, Mapping

import trio

from .._protocol import WATCHDOG
Streams = tuple[trio.abc.SendStream, trio.abc.ReceiveStream]


class Transport:
    """How to reach one runner's launcher.

    ``open()`` is an async context manager yielding a :class:`Pipe` to the launcher: its stdin and stdout as
    Trio streams, and what its carrier can tell about it. Leaving it ends the launcher (EOF) and releases the
    connection. That is the whole seam: the engine's seat speaks the launcher protocol over the streams,
    whatever carries them. Whether a launcher that ended is followed by another, and the batch allocation it
    may live in, are not the transport's to tell the engine (``_lifeline``: ``_pool`` gives them to the seat).
    """

    kind = "local"
    # What a user types, followed by one shell command (as one argument), to run that command where the
    # launcher's files are (empty: here). The run log keeps it, so that ``parallux clean`` can say how to
    # clean a remote workspace.
    login: tuple[str, ...] = ()

    def describe(self, name: str) -> str:
        """How reports name a runner on this transport."""
        return f"runner {name!r}"

    def plan_facts(self, root: str | None = None) -> dict[str, Any]:
        """What a dry run assumes of the launcher's machine, asking nothing of it (``root``: where its
        launcher would read the machine's facts, PARALLUX_MACHINE_ROOT)."""
        raise NotImplementedError

    def open(self, name: str) -> AsyncContextManager[Pipe]:
        raise NotImplementedError

    async def close(self) -> None:
        """The launcher was asked to quit (the end of the run): a transport whose connection may have gone
        silent bounds the wait here."""


def _none() -> None:
    return None


def _ignore(_: str) -> None:
    pass


@dataclass(frozen=True)
class Pipe:
    """One launcher, as its carrier gives it: the streams, what the seat asks of the launcher in its hello,
    and what only the carrier knows of it -- read by the seat as the fields of a value."""

    send: trio.abc.SendStream
    receive: trio.abc.ReceiveStream
    watchdog: float = WATCHDOG  # what the seat asks of the launcher in its hello; parallux pings at a sixth of it
    hello: Mapping[str, Any] = field(default_factory=dict)  # more of the hello request (SIGTERM means "error")
    host: str | None = None  # the name results give its machine (a Slurm node's); None: the hostname it reports
    variables: Mapping[str, str] = field(default_factory=dict)  # every command's, there (``PARALLUX_NODE``)
    # How the process that carries the launcher (its guardian) ended, if it did and not cleanly (``killed by
    # SIGKILL``), as far as the carrier can tell: it is the launcher's death.
    death: Callable[[], str | None] = _none
    # Why the launcher went away, if the carrier knows better than the stream (an allocation ended).
    lost_reason: Callable[[], str | None] = _none
    said_hello: Callable[[], None] = _none  # the launcher said hello: what fails from now on is not its start
    # The launcher ended unasked; the argument starts the marks of the commands it ran (a local carrier sweeps
    # them, should its guardian have died too).
    ended: Callable[[str], None] = _ignore
    reattachment: Reattachment | None = None  # a launcher that outlives a dropped connection: how to reach it


Reattach = Callable[[str, dict[str, Any], int, float], Awaitable[tuple[Streams, dict[str, Any]]]]


@dataclass(frozen=True)
class Reattachment:
    """What a carrier whose launcher outlives a dropped connection adds (an SSH runner's): the seat then
    reconnects instead of ending the launcher's commands (``_engine._reattach``)."""

    reconnect: float  # seconds a dropped connection is tried again for (its launcher waits as long)
    # Whether the stream that just ended was cut by its connection, the launcher being alive for all we know
    # (and so perhaps reattached), rather than ended by the launcher's own end.
    dropped: Callable[[], bool]
    # (name, point, seq, until): connect again and attach to the launcher that said hello with ``point``
    # (where it waits), trying until ``until`` (Trio's clock); the new streams and the launcher's
    # ``attached`` answer (what it got of the requests). ``seq``: the last of its events processed.
    # RunnerError when that fails for good.
    reattach: Reattach


def ended_how(returncode: int | None, signal_name: str | None = None) -> str | None:
    """A launcher's guardian's end in words, or None if it has not ended or ended cleanly. The guardian
    exits with its launcher's status, 128 + N when the launcher was killed by signal N."""
    if signal_name:
        return f"killed by SIG{signal_name.removeprefix('SIG')}"
    if not returncode:
        return None
    number = -returncode if returncode < 0 else returncode - 128
    try:
        return f"killed by {signal.Signals(number).name}"
    except ValueError:
        return f"exited with status {returncode}"


async def wait_for_exit(popen: subprocess.Popen[bytes], seconds: float) -> bool:
    """Whether the child has exited, waiting up to ``seconds``. Polled from 0.5 ms up: a child told to end
    usually does within milliseconds, and a fixed step would add itself to every end of a run."""
    with trio.move_on_after(seconds):
        pause = 0.0005
        while popen.poll() is None:
            await trio.sleep(pause)
            pause = min(pause * 2, 0.02)
    return popen.poll() is not None
