"""What an attempt's end means for the next: is it retried, and does its runner leave the pool.

A runner on which QUARANTINE_AFTER commands in a row could not be executed leaves the pool here.
"""

from __future__ import annotations

from typing import Any, Callable

from .._handles import Command, Result
from .._status import CUT_SHORT, FAILED_STATUSES, Status
from ._seat import Seat
from ._tree import HaltPolicy, TaskTree

QUARANTINE_AFTER = 5  # commands in a row that could not be executed on a runner before it leaves the pool
CANNOT_EXECUTE = (126, 127)  # the shell's "cannot execute" and "not found"


class Attempts:
    """The engine's view of attempts' ends (engine thread)."""

    def __init__(self, tree: TaskTree, halt: HaltPolicy, observe: Callable[..., Any]) -> None:
        self.tree = tree
        self.halt = halt
        self.observe = observe

    def retried(self, command: Command, result: Result) -> bool:
        """Whether the attempt that ended so is tried again (its retries left, the run going on)."""
        if command.attempt >= command.retries or self.tree.cancelled or self.halt.reason:
            return False
        if command.retry_on is None:
            return result.status in FAILED_STATUSES
        return result.status in command.retry_on or (result.status == Status.FAILED
                                                      and result.returncode in command.retry_on)

    def note(self, seat: Seat, command: Command, result: Result) -> None:
        """Count the commands in a row that could not be executed on a runner; at QUARANTINE_AFTER, take the
        runner out of the pool: a broken host (a binary without its executable bit, a missing program, a
        full disk) must not eat the whole queue and every retry in milliseconds."""
        command.avoid = seat if could_not_execute(result) else None
        if seat.quarantined is not None or not seat.alive:
            return
        if command.avoid is None:
            seat.unexecuted_in_a_row = 0
            return
        seat.unexecuted_in_a_row += 1
        if seat.unexecuted_in_a_row >= QUARANTINE_AFTER:
            seat.quarantined = (f"taken out of the pool: {seat.unexecuted_in_a_row} commands in a row could "
                                "not be executed")
            seat.publish()
            self.observe("quarantined", command, result=result, runner=seat.handle)


def could_not_execute(result: Result) -> bool:
    """The runner could not run it at all: a launch or transport error (not another run's work dir lock, nor a
    link planted in the work dir), or the shell's 126/127."""
    if result.status == Status.ERROR:  # (nor a launcher that went away under it)
        return result._kind not in ("locked", "unsafe") and result._kind not in CUT_SHORT
    return result.status == Status.FAILED and result.returncode in CANNOT_EXECUTE
