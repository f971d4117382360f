"""What a seat may hold beside its transport: whether a launcher that ended is followed by another
(``Relaunch``), and the batch allocation its launcher lives in, if any (``Batch``).

Both are protocols, so that the transports implementing them (``_transports._local``, ``_transports._slurm``)
import nothing of the engine, and the engine nothing of them: ``_pool`` hands each seat the ones its kind of
runner has. A seat without them (an SSH runner, a dry run's) has ``NO_RELAUNCH`` and no batch.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol

DEATHS_IN_A_ROW = 3  # launchers that die in a row, no command completed in between, before no new one is started


class Relaunch(Protocol):
    """Whether a launcher not (or no longer) connected may still come."""

    @property
    def expected(self) -> bool:
        """Whether one may still come: commands wait for it, and the seat opens the transport again once its
        launcher ended (a Slurm node's next, a local runner's new one)."""

    @property
    def waiting(self) -> str | None:
        """What it waits for, while no launcher is connected (``job 12 pending: Resources``), or why none
        will come."""

    def died(self, why: str) -> None:
        """The launcher ended unasked (``why``: its death, or the lost connection)."""

    def failed(self, why: str) -> None:
        """A launcher after the first could not be started (``why``); whether to try again is ``expected``."""

    def completed(self) -> None:
        """A command ran to its end on the launcher."""


class NoRelaunch:
    """A launcher that ends is not followed by another (an SSH runner's: its connection is reattached
    instead; a dry run's)."""

    expected = False
    waiting: str | None = None

    def died(self, why: str) -> None:
        pass

    def failed(self, why: str) -> None:
        pass

    def completed(self) -> None:
        pass


NO_RELAUNCH = NoRelaunch()


class Restarts(NoRelaunch):
    """A runner whose launcher died starts a new one: yes, until DEATHS_IN_A_ROW launchers in a row died with
    no command completed in between -- one that dies at once every time (it cannot start, or something kills
    it as it does) must not loop for ever. A local runner's."""

    def __init__(self) -> None:
        self.in_a_row = 0
        self.given_up: str | None = None  # why no new launcher is started

    @property
    def expected(self) -> bool:  # type: ignore[override]
        return self.given_up is None

    @property
    def waiting(self) -> str | None:  # type: ignore[override]
        return self.given_up

    def died(self, why: str) -> None:
        self.in_a_row += 1
        if self.in_a_row >= DEATHS_IN_A_ROW and self.given_up is None:
            self.given_up = (f"{self.in_a_row} launchers in a row died with no command completed (the last: "
                             f"{why}); no new one is started")

    def failed(self, why: str) -> None:
        self.died(why)  # (a new launcher that cannot start died, as far as giving up goes)

    def completed(self) -> None:
        self.in_a_row = 0


class Batch(Protocol):
    """An allocation of a batch system that a seat's launcher runs in, shared by the seats of its nodes. Its
    launcher comes later (the allocation may be pending) and may come again (a new allocation after the last
    one ended): the run goes on meanwhile. Its policy -- when a new allocation is worth asking for -- is its
    own; the engine only says what waits."""

    time_limit: float | None  # the longest any command may run there, if limited
    job_id: str  # the batch system's name for it (the current one, after a renewal)
    node_names: list[str] | None  # its nodes, once it runs

    def watch(self, changed: Callable[[], None]) -> None:
        """Call ``changed()`` (engine thread) whenever its job, its nodes or what it waits for change."""

    def time_left(self) -> float | None:
        """Seconds until the launcher's machine is taken away (the allocation's end), if known."""

    def cpus(self, facts: dict[str, Any]) -> int:
        """``max_jobs`` when the config gives none: the CPUs the allocation has on the launcher's node."""

    def want(self, delta: int) -> None:
        """Someone waits (+1) or no longer waits (-1) for a launcher (a file read): the allocation is then
        reached even with no command left to run."""

    def idle(self, timeouts: Iterable[float | None]) -> None:
        """None of its nodes runs anything while commands that could go there wait, with these timeouts
        (an iterable that may be read only as far as needed): end it for a new one if none fits the time
        left."""
