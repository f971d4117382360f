"""``Observers``: the events held while the engine settles ends and starts commands in one step reach every
observer in the order they happened -- at once to one with ``started_all``/``finished_all``, one by one to
the others -- and an observer that fails is dropped without stopping the others."""

from __future__ import annotations

from typing import Any

import pytest

from parallux._engine._observers import Observers


class Batched:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def __call__(self, event: str, command: Any, **details: Any) -> None:
        self.seen.append((event, command))

    def started_all(self, items: list[tuple[Any, dict[str, Any]]]) -> None:
        self.seen.append(("started_all", [command for command, _ in items]))

    def finished_all(self, items: list[tuple[Any, dict[str, Any]]]) -> None:
        self.seen.append(("finished_all", [(command, details["result"]) for command, details in items]))


def test_held_events_reach_observers_in_order_at_once_or_one_by_one(capsys: pytest.CaptureFixture[str]) -> None:
    one_by_one: list[tuple[str, Any, dict[str, Any]]] = []
    batched = Batched()

    def failing(event: str, command: Any, **details: Any) -> None:
        raise RuntimeError("display gone")

    observers = Observers(lambda event, command, **details: one_by_one.append((event, command, details)),
                          failing, batched)
    observers.hold()
    observers.observe("finished", "a", result="ra")
    observers.observe("finished", "b", result="rb")
    observers.observe("retrying", "c", result="rc")  # (not held: at once)
    observers.observe("started", "d", argv=["sh"])
    observers.observe("started", "e", argv=["sh"])
    observers.observe("finished", "d", result="rd")
    assert batched.seen == [("retrying", "c")]
    observers.release()
    assert [(event, command) for event, command, _ in one_by_one] == \
        [("retrying", "c"), ("finished", "a"), ("finished", "b"), ("started", "d"), ("started", "e"),
         ("finished", "d")]
    assert one_by_one[3][2] == {"argv": ["sh"]} and one_by_one[2][2] == {"result": "rb"}
    assert batched.seen == [("retrying", "c"), ("finished_all", [("a", "ra"), ("b", "rb")]),
                            ("started_all", ["d", "e"]), ("finished_all", [("d", "rd")])]
    assert failing not in observers and "function stopped: RuntimeError: display gone" in capsys.readouterr().err
    observers.observe("started", "f")  # (released: at once again)
    assert batched.seen[-1] == ("started", "f") and one_by_one[-1][:2] == ("started", "f")
