"""A turn of the engine: what one read of a launcher's events brings, settled and answered in one go.

A read of exit events used to wake three Trio tasks: the reader heard the ends, the group's task settled them
and started what they freed room for, and the writer task wrote the requests that made -- three task
switches, a checkpoint in each stream call and a loop iteration each, about a hundred microseconds a round
trip here, which at four commands at once was a quarter of a command's time. Now the reader holds a turn
while it dispatches what it read (``with turn:``): the groups whose ends it heard are settled when the turn
ends, in one scheduling pass, in the reader's own task (``settle``: the engine's), and what that posted to a
launcher whose stream is a plain descriptor is written there and then, when no write of the writer task is
under way (``Outbox.write_now``); what the descriptor does not take, and every other stream's data, goes to
the writer task as before. Outside a turn (an end heard as a launcher goes away, a command with a deadline of
its own) the group's task is woken and settles, and the writer task writes, as ever.

A leaf: it imports nothing of parallux.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol


class Deferred(Protocol):
    def write_now(self) -> None: ...


class Turn:
    """Held while the engine works on what one wake-up brought; the group ends heard and the writes posted
    meanwhile are taken care of when the outermost ``with`` ends."""

    __slots__ = ("_settle", "_depth", "_heard", "_writes")

    def __init__(self, settle: Callable[[list[Any]], None] | None = None) -> None:
        self._settle = settle  # settles the heard groups' ends, in one scheduling pass (the engine's)
        self._depth = 0
        self._heard: list[Any] = []  # groups' ends (``_engine._ends.GroupEnds``) heard in this turn
        self._writes: list[Deferred] = []  # outboxes with data posted in this turn

    def hear(self, ends: Any) -> bool:
        """Settle a group's heard ends at the end of this turn; False outside a turn (or with no one to settle:
        then its own task must be woken)."""
        if self._depth and self._settle is not None:
            self._heard.append(ends)
            return True
        return False

    def defer(self, outbox: Deferred) -> bool:
        """Write an outbox's data at the end of this turn; False outside a turn."""
        if self._depth:
            self._writes.append(outbox)
            return True
        return False

    def __enter__(self) -> Turn:
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        if self._depth > 1:
            self._depth -= 1
            return
        try:
            while self._heard:  # (settling may hear more: a launch to a launcher that is gone ends at once)
                heard, self._heard = self._heard, []
                assert self._settle is not None
                self._settle(heard)
        finally:
            self._depth = 0
            writes, self._writes = self._writes, []
            for outbox in writes:
                outbox.write_now()


NO_TURN = Turn()  # a launcher client's outside an engine (a transfer's tests, the views): never held
