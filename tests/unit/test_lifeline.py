"""What a seat holds beside its transport (``_lifeline``): whether a launcher that ended is followed by
another, and the batch allocation it lives in -- each kind's policy, in-process, no launcher started."""

from __future__ import annotations

from typing import Any

from parallux._lifeline import NO_RELAUNCH, Restarts
from parallux._transports._slurm._allocation import Allocation
from parallux._transports._slurm._commands import Request
from parallux._transports._slurm._node import STARTS, NodeRelaunch
from parallux._transports._slurm._shell import Shell


class Recording(Shell):
    """A shell that runs nothing and keeps what it was asked to run soon (``scancel``)."""

    def __init__(self) -> None:
        self.soon: list[list[str]] = []

    def run_soon(self, argv: list[str]) -> None:
        self.soon.append(argv)


def allocation(left: float | None, shell: Any = None, own: bool = True) -> Allocation:
    made = Allocation(Request("hpc", 1), shell or Recording(), job_id="12", own=own, nodes=["n1"], time_limit=3600)
    made.start_clock(left)
    return made


def test_Restarts_gives_up_after_three_deaths_in_a_row_and_a_completed_command_starts_the_count_again() -> None:
    restarts = Restarts()
    restarts.died("killed by SIGKILL")
    restarts.failed("cannot start the launcher")
    restarts.completed()
    restarts.died("killed by SIGKILL")
    restarts.died("killed by SIGKILL")
    assert restarts.expected and restarts.waiting is None
    restarts.failed("killed by SIGKILL")
    assert not restarts.expected
    assert restarts.waiting == ("3 launchers in a row died with no command completed (the last: killed by "
                                "SIGKILL); no new one is started")
    assert not NO_RELAUNCH.expected and NO_RELAUNCH.waiting is None


def test_Allocation_idle_ends_it_only_when_no_waiting_timeout_fits_the_time_left() -> None:
    shell = Recording()
    held = allocation(100.0, shell)
    held.idle(iter([]))                  # nothing waits for it: it is kept
    held.idle(iter([500.0, None, 900]))  # one without a timeout would fit
    held.idle(iter([500.0, 50.0]))       # one fits the time left
    assert shell.soon == []
    held.idle(iter([500.0, 200.0]))      # none fits: it idles until its end otherwise
    assert shell.soon == [["scancel", "12"]]
    held.idle(iter([500.0]))             # (once)
    assert shell.soon == [["scancel", "12"]]


def test_Allocation_idle_keeps_an_allocation_without_a_limit_or_not_its_own() -> None:
    unlimited, inside = Recording(), Recording()
    allocation(None, unlimited).idle(iter([500.0]))
    allocation(100.0, inside, own=False).idle(iter([500.0]))
    assert unlimited.soon == inside.soon == []


def test_Allocation_cpus_are_what_its_step_holds_on_the_node() -> None:
    held = allocation(100.0)
    assert held.cpus({"usable_cores": 4, "logical_cores": 8}) == 4
    assert held.cpus({"logical_cores": 8}) == 8
    assert held.cpus({}) == 1


def test_NodeRelaunch_gives_a_node_up_after_failed_starts_or_one_refused_after_its_hello() -> None:
    said = ["srun: error: Unable to create step"]
    node = NodeRelaunch(allocation(100.0), lambda: said)
    for _ in range(STARTS - 1):
        node.failed("the launcher did not start")
    assert node.expected and node.waiting == "job 12 starting its launchers"
    node.failed("the launcher did not start")
    assert not node.expected
    assert node.waiting == "the launcher did not start (srun: srun: error: Unable to create step)"
    refused = NodeRelaunch(allocation(100.0), lambda: [])
    refused.hello_seen = True
    refused.failed("core_pool names CPU 9")
    assert refused.waiting == "core_pool names CPU 9" and not refused.expected
