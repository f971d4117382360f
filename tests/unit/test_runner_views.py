"""What the main thread reads of a runner: views the engine publishes on the runner's events (issue 22).

The real engine and Goal over plan launchers, as in tests/unit/test_engine.py. Every view a seat is given is
recorded where it is assigned, so the tests see each state a reader in another thread could ever see.
"""

from __future__ import annotations

import json
import posixpath
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from trio.testing import MockClock

from parallux._engine import Engine
from parallux._engine._seat import Seat
from parallux._goal import Goal
from parallux._transports._plan import PlanTransport
from tests.plan_engine import FACTS, ok_in


class Recorded:
    """A seat's ``view``, each assignment recorded: what any reader could ever have seen, in order."""

    def __init__(self) -> None:
        self.assigned: list[tuple[Any, Any]] = []  # (seat, view)

    def __get__(self, seat: Any, owner: type | None = None) -> Any:
        if seat is None:
            return self
        return seat.__dict__["view"]

    def __set__(self, seat: Any, view: Any) -> None:
        self.assigned.append((seat, view))
        seat.__dict__["view"] = view

    def of(self, seat: Any) -> list[Any]:
        return [view for who, view in self.assigned if who is seat]


@pytest.fixture
def views(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    recorded = Recorded()
    monkeypatch.setattr(Seat, "view", recorded, raising=False)
    return recorded


class Run:
    """An engine thread on a virtual clock and a Goal over plan launchers answering ``outcome``; with
    ``frozen``, virtual time stands still until ``advance()``: commands run until then."""

    def __init__(self, outcome: Any, frozen: bool = False) -> None:
        self.clock = MockClock(autojump_threshold=0.001) if not frozen else MockClock()
        self.engine = Engine("test-run", clock=self.clock)
        self.engine.start()
        self.goal = Goal(self.engine, run_id="test-run", resume=False,
                         transport_for=lambda real: PlanTransport(real, facts=dict(FACTS), outcome=outcome))

    def advance(self, seconds: float) -> None:
        self.engine.call(self.clock.jump, seconds)  # (in the loop's thread: its next pass sees the time)

    def close(self) -> None:
        self.engine.cancel()
        self.engine.shutdown()
        assert self.engine.join(timeout=10)


@pytest.fixture
def run_of() -> Iterator[Any]:
    runs: list[Run] = []

    def make(outcome: Any = ok_in(1), **options: Any) -> Run:
        runs.append(Run(outcome, **options))
        return runs[-1]

    yield make
    for run in runs:
        run.close()


def test_Runner_status_is_live_while_commands_run(run_of: Any, views: Recorded) -> None:
    running: list[int] = []  # the plan launcher's: each sleeps its 10 s from the moment it is here

    def ten_seconds(request: dict[str, Any]) -> tuple[float, str, int]:
        running.append(request["id"])
        return 10, "ok", 0

    run = run_of(ten_seconds, frozen=True)
    runner = run.goal.local(max_jobs=4, core_pool=range(4))
    handles = [runner.run("work", threads=1) for _ in range(3)]
    while len(running) < 3:  # started; the clock stands still, so they run on
        time.sleep(0.001)
    status = runner.status()
    assert (status.active_jobs, status.available_jobs, status.max_jobs) == (3, 1, 4)
    assert status.available_core_count == 1 and status.connected
    published = len(views.of(runner._seat))
    assert published >= 2 and runner._seat.load.active == 3  # made, then connected; the load counts
    run.advance(10)
    assert run.engine.wait_idle(60)  # (a bound on a hang, not a timing)
    assert [h.sync().status for h in handles] == ["ok"] * 3
    status = runner.status()
    assert (status.active_jobs, status.available_jobs, status.available_core_count) == (0, 4, 4)
    assert len(views.of(runner._seat)) == published  # live figures, no view per command


def test_Runner_view_is_published_per_seat_event_not_per_command(run_of: Any, views: Recorded) -> None:
    run = run_of(ok_in(1))
    few, many = run.goal.local(name="few", max_jobs=8), run.goal.local(name="many", max_jobs=8)
    assert [h.sync().status for h in [few.run("work") for _ in range(10)]] == ["ok"] * 10
    run.goal.setRunner(many)
    for index in range(1000):
        run.goal.schd("work", name=f"c{index}")
    assert {r.status for r in run.goal.issue().sync()} == {"ok"}
    assert many.status().active_jobs == 0
    assert 2 <= len(views.of(many._seat)) == len(views.of(few._seat)) <= 4  # made, reached, connected: no more


def test_Runner_status_from_another_thread_never_sees_a_half_configured_runner(run_of: Any,
                                                                               views: Recorded) -> None:
    run = run_of(ok_in(1))
    seen: list[Any] = []
    stop = threading.Event()

    def reader() -> None:  # what the live display does: read the runners' state while they connect
        while not stop.is_set():
            for runner in list(run.goal._pool.runners.values()):
                seen.append((runner._seat.view, runner.status()))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        runners = [run.goal.local(name=f"r{index}", workspace="ws") for index in range(5)]
        run.goal.setRunner(runners)
        for _ in range(20):
            run.goal.schd("work")
        assert {r.status for r in run.goal.issue().sync()} == {"ok"}
    finally:
        stop.set()
        thread.join()
    every = [view for _, view in views.assigned] + [view for view, _ in seen]
    assert any(view.connected for view in every) and any(not view.connected for view in every)
    for view in every:  # each state a reader could ever see
        if view.connected:
            assert view.max_jobs == 8 and posixpath.isabs(view.workspace) and view.facts["hostname"] == "planned"
    for _, status in seen:
        assert not status.connected or status.max_jobs == 8
    assert all(r.workspace == "/home/u/ws" and r.max_jobs == 8 for r in runners)


def test_Runner_facts_are_a_plain_dict_a_config_may_keep_and_change(run_of: Any) -> None:
    run = run_of(ok_in(1))
    runner = run.goal.local(max_jobs=2)
    assert runner.run("work").sync().status == "ok"
    facts = runner.facts
    assert json.loads(json.dumps(facts))["hostname"] == "planned"  # (a read-only mapping cannot be dumped)
    facts["hostname"] = "changed"
    assert runner.facts["hostname"] == "planned"  # the config's copy, never the engine's view
