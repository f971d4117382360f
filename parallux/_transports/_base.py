"""The seam every kind of runner implements: a transport to a launcher."""

from __future__ import annotations

import signal
import subprocess
from typing import Any, AsyncContextManager

import trio

from .._protocol import WATCHDOG
Streams = tuple[trio.abc.SendStream, trio.abc.ReceiveStream]
DEATHS_IN_A_ROW = 3  # launchers that die in a row, no command completed in between, before no new one is started


class Restarts:
    """Whether a runner whose launcher died starts a new one: yes, until DEATHS_IN_A_ROW launchers in a row
    died with no command completed in between -- one that dies at once every time (it cannot start, or
    something kills it as it does) must not loop for ever. Held by the transports that restart (local); the
    seat says when a command completed."""

    def __init__(self) -> None:
        self.in_a_row = 0
        self.given_up: str | None = None  # why no new launcher is started

    def died(self, why: str) -> None:
        self.in_a_row += 1
        if self.in_a_row >= DEATHS_IN_A_ROW and self.given_up is None:
            self.given_up = (f"{self.in_a_row} launchers in a row died with no command completed (the last: "
                             f"{why}); no new one is started")

    def completed(self) -> None:
        self.in_a_row = 0


class Transport:
    """How to reach one runner's launcher.

    ``open()`` is an async context manager yielding the launcher's stdin and stdout as Trio streams; leaving
    it ends the launcher (EOF) and releases the connection. That is the whole seam: the engine's seat
    speaks the launcher protocol over the streams, whatever carries them.
    """

    kind = "local"
    watchdog = WATCHDOG  # what the seat asks of the launcher in its hello; parallux pings at a sixth of it
    hello: dict[str, Any] = {}  # more of the hello request (a Slurm launcher: SIGTERM means "error")
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

    def open(self, name: str) -> AsyncContextManager[Streams]:
        raise NotImplementedError

    def ready(self) -> None:
        """The launcher said hello: what fails from now on is not its start."""

    async def closing(self) -> None:
        """The launcher was asked to quit (the end of the run): a transport whose connection may have gone
        silent bounds the wait here."""

    def lost(self, mark_prefix: str, why: str) -> None:
        """The launcher ended unasked (``why``: its death, or the lost connection); ``mark_prefix`` starts the
        marks of the commands it ran."""
        if self.restarts is not None:
            self.restarts.died(why)

    def death(self) -> str | None:
        """How the process that carries the launcher (its guardian) ended, if it did and not cleanly
        (``killed by SIGKILL``), as far as the transport can tell: it is the launcher's death."""
        return None

    @property
    def local(self) -> bool:
        """Whether the launcher's files are this machine's files."""
        return False

    # -- a launcher that comes later, and may come again (a Slurm allocation) ------------------------------

    deferred = False  # True: open() may wait long (a pending allocation); the run goes on meanwhile
    restarts: Restarts | None = None  # a launcher that dies is replaced by a new one, within these bounds

    @property
    def expected(self) -> bool:
        """Whether a launcher not (or no longer) connected may still come: commands wait for it, and the seat
        opens the transport again once its launcher ended (a Slurm node's next, a local runner's new one)."""
        return self.restarts is not None and self.restarts.given_up is None

    @property
    def waiting(self) -> str | None:
        """What it is waiting for, while no launcher is connected (``job 12 pending: Resources``), or why none
        will come."""
        return self.restarts.given_up if self.restarts is not None else None

    def longest_command(self) -> float | None:
        """The longest any command may run there (an allocation's time limit), if limited."""
        return None

    @property
    def group(self) -> object:
        """What it shares its machine's lease with: a Slurm allocation, for each of its nodes."""
        return self

    def renew(self) -> None:
        """End the lease it runs on now for a new one (an allocation with too little time left)."""

    def time_left(self) -> float | None:
        """Seconds until the launcher's machine is taken away (an allocation's end), if known."""
        return None

    def failed(self, why: str) -> None:
        """A launcher after the first (a deferred transport's, or one replacing a launcher that died) could not
        be started (``why``): whether to try again is its own (``expected``). A death, for ``restarts``."""
        if self.restarts is not None:
            self.restarts.died(why)

    def wanting(self, delta: int) -> None:
        """Someone waits (+1) or no longer waits (-1) for the launcher (a file read): a deferred transport
        then reaches it even with no command left to run."""

    def lost_reason(self) -> str | None:
        """Why the launcher went away, if the transport knows better than the stream (an allocation ended)."""
        return None

    def host_of(self, facts: dict[str, Any]) -> str | None:
        """The name results give the launcher's machine."""
        return facts.get("hostname")

    def variables(self) -> dict[str, str]:
        """Variables every command on this transport gets (``PARALLUX_NODE``)."""
        return {}

    def default_slots(self, facts: dict[str, Any]) -> int:
        """``max_jobs`` when the config gives none."""
        return int(facts.get("logical_cores") or 1)


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
