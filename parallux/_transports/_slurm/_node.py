"""Whether one node of a Slurm runner gets another launcher: the seat's ``Relaunch`` for that node."""

from __future__ import annotations

from typing import Callable

from ._allocation import Allocation

STARTS = 3        # launchers that fail to start on a node before the node is given up


class NodeRelaunch:
    """A node's next launcher comes with its allocation's next opening (the same allocation, or the next
    one), unless STARTS launchers failed to start there, or one that said hello was refused (its node lacks
    the core pool's CPUs, or numactl): then the node is given up."""

    def __init__(self, allocation: Allocation, srun_said: Callable[[], list[str]]) -> None:
        self.allocation = allocation
        self.srun_said = srun_said  # what the current launcher's srun wrote on its stderr
        self.given_up: str | None = None
        self.hello_seen = False  # the current launcher said hello (what fails then is the node, not its start)
        self._failures = 0

    @property
    def expected(self) -> bool:
        return self.given_up is None and self.allocation.expected

    @property
    def waiting(self) -> str | None:
        return self.given_up or self.allocation.waiting

    def died(self, why: str) -> None:
        pass  # (the allocation tells whether the node's next launcher comes: Allocation.node)

    def failed(self, why: str) -> None:
        """The launcher did not start: tried again on the allocation's next opening, up to STARTS times."""
        said = "; ".join(line for line in self.srun_said() if line.strip())
        why += f" (srun: {said})" if said and said not in why else ""
        self._failures += 1
        if self._failures >= STARTS or self.hello_seen:
            self.given_up = why

    def completed(self) -> None:
        pass
