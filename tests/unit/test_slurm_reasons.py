"""A pending allocation whose reason can never clear fails its runner within 10 s, and its job is cancelled;
one whose reason may clear keeps waiting. A test-double shell plays Slurm's client commands, on Trio's
autojumping clock (the real cluster's cases are in tests/integration/slurm/test_slurm_reach.py)."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import trio

from parallux._transports._slurm._allocation import Allocation, Closed
from parallux._transports._slurm._commands import Request
from parallux._transports._slurm._shell import Done, Shell

NEVER_WITHIN = 10.0  # seconds (SPEC 19)


class ScriptedSlurm(Shell):
    """squeue answers ``reason_at(seconds since the start)``; sinfo and ``squeue --me`` answer as given; every
    command is kept."""

    def __init__(self, reason_at: Callable[[float], str], nodes: str = "", mine: str = "") -> None:
        self.reason_at = reason_at
        self.nodes = nodes
        self.mine = mine
        self.ran: list[list[str]] = []
        self.start = trio.current_time()

    async def run(self, argv: list[str], stdin: str | None = None) -> Done:
        self.ran.append(argv)
        await trio.sleep(0.05)  # a command takes a moment
        if argv[0] == "sinfo":
            return Done(0, self.nodes, "")
        if argv[:3] == ["squeue", "-h", "--me"]:
            return Done(0, self.mine, "")
        if argv[0] == "squeue":
            if any(a[0] == "scancel" for a in self.ran):
                return Done(0, "", "")
            return Done(0, f"PENDING|{self.reason_at(trio.current_time() - self.start)}||\n", "")
        return Done(0, "", "")

    @property
    def cancelled(self) -> bool:
        return ["scancel", "7"] in self.ran


async def wait_for_nodes(shell: ScriptedSlurm, seconds: float = 60) -> tuple[str | None, float]:
    """(the allocation's failure, the seconds it took), or (None, seconds) if it still waits after ``seconds``."""
    allocation = Allocation(Request("cl", 1), shell, job_id="7", own=True)
    start = trio.current_time()
    with trio.move_on_after(seconds):
        try:
            await allocation.node(0, None)
        except Closed:
            return allocation.failure, trio.current_time() - start
        raise AssertionError("the allocation ran")
    return None, trio.current_time() - start


@pytest.mark.parametrize("reason_at, nodes, mine, phrase", [
    (lambda t: "PartitionTimeLimit", "", "", "PartitionTimeLimit: its time limit is longer than the partition's"),
    # what Slurm says first, before its scheduler names the limit 3 s later
    (lambda t: "PartitionConfig" if t < 3 else "PartitionTimeLimit", "", "", "PartitionTimeLimit"),
    (lambda t: "PartitionConfig", "", "", "PartitionConfig: it asks for more than its partition has"),
    (lambda t: "PartitionNodeLimit", "", "", "PartitionNodeLimit"),
    (lambda t: "QOSMaxWallDurationPerJobLimit", "", "", "QOSMaxWallDurationPerJobLimit"),
    (lambda t: "None" if t < 1 else "ReqNodeNotAvail, UnavailableNodes:n[2-3]", "n2|drained\nn3|down*\n", "",
     "ReqNodeNotAvail: nodes it requires are down or drained (n2 drained, n3 down*)"),
    (lambda t: "AssocMaxJobsLimit", "", "", "AssocMaxJobsLimit"),
])
async def test_a_reason_that_never_clears_fails_the_allocation_and_cancels_the_job(
        autojump_clock: Any, reason_at: Callable[[float], str], nodes: str, mine: str, phrase: str) -> None:
    shell = ScriptedSlurm(reason_at, nodes, mine)
    failure, took = await wait_for_nodes(shell)
    assert failure is not None and failure.startswith("job 7 can never start: ") and phrase in failure, failure
    assert took < NEVER_WITHIN
    assert shell.cancelled


@pytest.mark.parametrize("reason_at, nodes, mine", [
    (lambda t: "Resources", "", ""),
    (lambda t: "Priority", "", ""),
    (lambda t: "AssocGrpCpuLimit", "", ""),
    (lambda t: "ReqNodeNotAvail, UnavailableNodes:n2", "n2|allocated\n", ""),  # busy, not gone
    (lambda t: "ReqNodeNotAvail, Reserved for maintenance", "", ""),
    (lambda t: "AssocMaxJobsLimit", "", "5\n6\n"),  # the user's other running jobs: it clears when they end
])
async def test_a_reason_that_may_clear_keeps_waiting(autojump_clock: Any, reason_at: Callable[[float], str],
                                                     nodes: str, mine: str) -> None:
    shell = ScriptedSlurm(reason_at, nodes, mine)
    failure, _ = await wait_for_nodes(shell)
    assert failure is None
    assert not shell.cancelled
