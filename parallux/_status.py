"""How a command ended: one ``Status`` enum, whose values are the strings of the API, the records and the logs.

A ``StrEnum``, so ``result.status == "ok"`` holds, ``json.dumps`` writes ``"ok"``, ``repr`` shows ``'ok'``,
and configs written for the seed's strings run unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    OK = "ok"                # exited 0
    FAILED = "failed"        # exited non-zero (or a signal parallux did not send)
    TIMEOUT = "timeout"      # its timeout expired; its process tree was stopped
    OOM = "oom"              # its process tree exceeded its memory= limit (or met the OOM killer) and was killed
    CANCELLED = "cancelled"  # stopped or never started: the run was interrupted or halted
    ERROR = "error"          # could not be launched, its runner was lost, or no runner was left
    PLANNED = "planned"      # a dry run: nothing ran

    def __repr__(self) -> str:
        return repr(self.value)  # a config printing its results shows 'ok', as it did with plain strings


FINISHED_STATUSES = tuple(Status)
# Did not succeed by itself: retried (by default), counted for a halt, reported as a failure.
FAILED_STATUSES = frozenset({Status.FAILED, Status.TIMEOUT, Status.OOM, Status.ERROR})
# Kinds of "error" (``Result._kind``) where the launcher went away under a command that had started: its
# connection lost, its launcher dead, its batch job ended. The runner's misfortune, not the command's.
CUT_SHORT = frozenset({"lost", "died", "terminated"})
