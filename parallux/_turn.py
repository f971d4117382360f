"""A turn of the engine: the ends one read of a launcher's events brings, settled in the reader's task.

A read of exit events used to wake two more Trio tasks: the reader heard the ends, then the group's task
settled them and started what they freed room for, then the writer task wrote the requests that made --
task switches, a checkpoint in each stream call and a loop iteration each. Now the reader holds a turn while
it dispatches what it read (``with turn:``): the groups whose ends it heard are settled as the turn ends, in
one scheduling pass, in the reader's own task (``settle``: the engine's), and the requests that makes go
straight to a launcher whose stream is a plain descriptor (``_outbox``). An end heard outside a turn (as a
launcher goes away) wakes the group's task, which settles it as ever.

A leaf: it imports nothing of parallux.
"""

from __future__ import annotations

from typing import Any, Callable


class Turn:
    """Held while the engine works on what one wake-up brought; the groups' ends heard meanwhile are settled
    when the outermost ``with`` ends."""

    __slots__ = ("_settle", "_depth", "_heard")

    def __init__(self, settle: Callable[[list[Any]], None] | None = None) -> None:
        self._settle = settle  # settles the heard groups' ends, in one scheduling pass (the engine's)
        self._depth = 0
        self._heard: list[Any] = []  # groups' ends (``_engine._ends.GroupEnds``) heard in this turn

    def hear(self, ends: Any) -> bool:
        """Settle a group's heard ends at the end of this turn; False outside a turn (or with no one to settle:
        then its own task must be woken)."""
        if self._depth and self._settle is not None:
            self._heard.append(ends)
            return True
        return False

    def __enter__(self) -> Turn:
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth:
            return
        self._depth = 1  # (what settling hears is settled in this turn too: a launch to a launcher that is
        try:             # gone ends at once)
            while self._heard:
                heard, self._heard = self._heard, []
                assert self._settle is not None
                self._settle(heard)
        finally:
            self._depth = 0


NO_TURN = Turn()  # a launcher client's outside an engine (a transfer's tests, the views): never held
