"""The real engine and Goal, driven through the plan transport (an in-process launcher) on Trio's virtual
clock: limits, leases, timeouts, cancellation, retries, halt, resume and the dry run -- no processes.

The engine runs its own Trio loop in its thread, as in a real run; its clock is an autojumping MockClock, so
a command that "takes" 10 s takes 10 virtual seconds and a few real milliseconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from parallux._engine import Engine
from parallux._goal import Goal
from parallux._transports._base import Pipe
from parallux._transports._plan import PlanTransport
from tests.helpers import peak_overlap
from tests.plan_engine import FACTS, Run, ok_in


@pytest.fixture
def run_of() -> Iterator[Any]:
    runs: list[Run] = []

    def make(outcome: Any = ok_in(1), **options: Any) -> Run:
        runs.append(Run(outcome, **options))
        return runs[-1]

    yield make
    for run in runs:
        run.close()


def intervals(results: list[Any], runner: str | None = None) -> list[tuple[float, float]]:
    return [(r.start_time, r.end_time) for r in results if runner is None or r.runner_name == runner]


def test_Engine_never_exceeds_the_global_and_the_runner_limits(run_of: Any) -> None:
    run = run_of(ok_in(1))
    goal = run.goal
    a, b = goal.local(name="a", max_jobs=2), goal.local(name="b", max_jobs=4)
    goal.setRunner([a, b])
    goal.setParallel(5)
    for index in range(40):
        goal.schd("work", name=f"c{index}")
    results = goal.issue().sync()
    assert {r.status for r in results} == {"ok"}
    assert peak_overlap(intervals(results, "a")) == 2 and peak_overlap(intervals(results, "b")) == 3
    assert peak_overlap(intervals(results)) == 5
    assert max(r.end_time for r in results) - min(r.start_time for r in results) == pytest.approx(8, abs=0.01)


def test_Engine_core_leases_never_overlap_and_always_return(run_of: Any) -> None:
    run = run_of(lambda request: (1 + len(request["record"]["cores"]) * 0.5, "ok", 0))
    goal = run.goal
    pool = goal.local(name="pool", core_pool=range(8), numa_nodes={0: range(4), 1: range(4, 8)})
    handles = [pool.run("work", threads=1 + index % 4) for index in range(30)]
    results = [h.sync() for h in handles]
    for first in results:
        for second in results:
            overlap = first.start_time < second.end_time and second.start_time < first.end_time
            if first is not second and overlap:
                assert not set(first.cores) & set(second.cores), (first, second)
    assert all(len(r.cores) == 1 + i % 4 for i, r in enumerate(results))
    assert pool.available_core_count() == 8


def test_Engine_timeout_stops_a_command_at_its_deadline(run_of: Any) -> None:
    run = run_of(ok_in(100))
    result = run.goal.run("hang", timeout=3, check=False).sync()
    assert result.status == "timeout" and result.returncode == -15
    assert result.end_time - result.start_time == pytest.approx(3, abs=0.01)


def test_Engine_retries_what_retry_on_names_and_keeps_every_attempt(run_of: Any) -> None:
    run = run_of(lambda request: (1, "failed", 3) if request["record"]["attempt"] < 2 else (1, "ok", 0))
    goal = run.goal
    again = goal.run("flaky", retries=2, retry_on={3})
    once = goal.run("flaky", retries=2, retry_on=["timeout"], check=False)
    assert [a["status"] for a in again.sync().attempts] == ["failed", "failed", "ok"]
    assert once.sync().status == "failed" and len(once.sync().attempts) == 1


def test_Engine_halt_soon_cancels_what_is_queued_and_lets_running_ones_finish(run_of: Any) -> None:
    run = run_of(lambda request: (1, "failed", 1) if "bad" in request["command_text"] else (5, "ok", 0))
    goal = run.goal
    goal.local(max_jobs=2)
    goal.setHalt("soon", 1)
    # One group: on the autojumping clock, "bad" could otherwise end before the main thread submits "long".
    handles = [goal.schd("bad", check=True), goal.schd("long")] + [goal.schd("later") for _ in range(3)]
    goal.issue()
    statuses = [h.result.status if h.done() or run.engine.wait_idle(5) else None for h in handles]
    assert statuses == ["failed", "ok", "cancelled", "cancelled", "cancelled"]
    assert run.engine.halt_reason == "halted (soon) after 1 command failed"


def test_Engine_cancel_stops_running_commands_and_cancels_queued_ones(run_of: Any) -> None:
    run = run_of(ok_in(1000))
    goal = run.goal
    goal.local(max_jobs=2)
    handles = [goal.run("long", check=False) for _ in range(5)]
    while sum(h.assigned() for h in handles) < 2:
        time.sleep(0.001)
    run.engine.cancel()
    assert run.engine.wait_idle(5)
    assert [h.result.status for h in handles] == ["cancelled"] * 5
    assert list(run.transports[0].kills.values()) == ["cancelled", "cancelled"]  # the two running: stopped


def test_Engine_waits_for_commands_without_a_timeout_without_a_task_each(run_of: Any) -> None:
    """Only a command with a timeout has a task of its own (its deadline); the group's task settles the
    others' ends, and stops them when the run is cancelled: a group of thousands is not thousands of tasks."""
    run = run_of(ok_in(1000))
    goal = run.goal
    goal.local(max_jobs=4)
    for _ in range(3):
        goal.schd("long", check=False)
    goal.schd("long", timeout=5000, check=False)
    group = goal.issue()
    handles = list(group)
    while sum(h.assigned() for h in handles) < 4:
        time.sleep(0.001)
    assert run.engine.call(lambda: len(group._nursery.child_tasks)) == 1
    run.engine.cancel()
    assert run.engine.wait_idle(5)
    assert [h.result.status for h in handles] == ["cancelled"] * 4
    assert list(run.transports[0].kills.values()) == ["cancelled"] * 4  # every running one: stopped


def test_Engine_settles_commands_with_a_timeout_with_the_others(run_of: Any) -> None:
    """A command with a timeout that ends in time is settled by its group, as the others are (its own task only
    waits for its deadline): the ends one read brings take one scheduling pass, not one each."""
    run = run_of(ok_in(10))
    goal = run.goal
    goal.local(max_jobs=4)
    lifecycle = run.engine.commands
    passes = []
    schedule = lifecycle.schedule
    lifecycle.schedule = lambda: (passes.append(trio.current_time()), schedule())[1]  # type: ignore[method-assign]
    results = [goal.schd("work", timeout=100) for _ in range(8)]
    goal.issue().sync()
    assert [r.result.status for r in results] == ["ok"] * 8
    # the 4 ends at t=10 were settled in one pass, which started the next 4 (settled one by one: 4 passes)
    assert passes.count(10.0) == 1, passes


def test_Engine_resume_skips_what_an_earlier_run_recorded(run_of: Any, tmp_path: Path) -> None:
    done = tmp_path / "ws" / "done"
    done.mkdir(parents=True)
    (done / "result.json").write_text(json.dumps({"returncode": 0, "command": "work", "run_id": "earlier",
                                                  "runner": "local", "inputs": None}))
    run = run_of(ok_in(1), resume=True)
    run.goal.local(workspace=str(tmp_path / "ws"))
    skipped = run.goal.run("work", work_relpath="done").sync()
    ran = run.goal.run("work", work_relpath="new").sync()
    assert (skipped.resumed, skipped.run_id) == (True, "earlier")
    assert (ran.resumed, ran.run_id) == (False, "test-run")


def test_Engine_dry_run_plans_in_submission_order_and_copies_nothing(run_of: Any, tmp_path: Path) -> None:
    from parallux._transports._plan import planned

    run = run_of(planned)
    goal = run.goal
    a, b = goal.local(name="a", max_jobs=1), goal.local(name="b", max_jobs=1)
    goal.setRunner([a, b])
    results = [goal.run("work", name=f"c{i}").sync() for i in range(4)]
    assert [(r.status, r.returncode, r.runner_name) for r in results] == [("planned", None, "a")] * 4
    (tmp_path / "file").write_text("x")
    transfer = a.put(tmp_path / "file", "there")
    assert transfer._planned and (transfer.files_sent, transfer.bytes_sent) == (0, 0)
    assert a.read_file("anything") == b""


async def test_Engine_closes_its_seats_at_once(autojump_clock: Any) -> None:
    # An SSH runner's close can wait for its connection to close; with several servers the end of a run (or
    # a Ctrl-C) must take the longest of those waits, not their sum.
    class SlowToClose:
        closed_at: float | None = None

        async def close(self, hard: bool = False) -> None:
            await trio.sleep(5)
            self.closed_at = trio.current_time()

    engine = Engine("test-run")
    engine.seats = [SlowToClose() for _ in range(3)]  # type: ignore[misc]
    started = trio.current_time()
    await engine.tree.close_seats(engine.seats)
    assert [s.closed_at for s in engine.seats] == [started + 5] * 3  # type: ignore[attr-defined]


def test_Engine_ctrl_c_while_setRunner_connects_still_closes_the_seats_that_connected() -> None:
    # setRunner() connects new hosts at once. A Ctrl-C while one is connected and another still connecting
    # must stop the connecting one and close the connected one: a seat left open keeps the engine (and
    # parallux) from ever ending.
    class Connecting:
        def __init__(self, name: str, connect_seconds: float) -> None:
            self.name = name
            self.connect_seconds = connect_seconds
            self.closed: trio.Event | None = None

        async def serve(self, run_id: str, lost: Any, task_status: Any = trio.TASK_STATUS_IGNORED,
                        tell: Any = None) -> None:
            self.closed = trio.Event()
            await trio.sleep(self.connect_seconds)
            task_status.started()
            await self.closed.wait()  # a launcher lives until the seat is closed

        async def close(self, hard: bool = False) -> None:
            assert self.closed is not None
            self.closed.set()

    engine = Engine("test-run")
    engine.start()
    fast, slow = Connecting("fast", 0.01), Connecting("slow", 60)
    config = threading.Thread(target=lambda: engine.call_async(engine.add_seats, [fast, slow]), daemon=True)
    config.start()
    deadline = time.monotonic() + 10
    while fast not in engine.seats and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.seats == [fast]  # joined the moment it connected, while slow is still connecting
    engine.cancel()
    engine.shutdown()
    assert engine.join(timeout=10), "the engine never ended: a connected seat was left open"
    assert engine.seats == [fast]


class CountedWrites(trio.abc.SendStream):
    """The launcher's stdin as an SSH channel or a pipe offers it: ``send_all``, and ``write_now`` (a write that
    needs no await); every write is counted, whichever way it came."""

    def __init__(self, into: trio.testing.MemoryReceiveStream) -> None:
        self.into = into
        self.writes: list[bytes] = []

    def write_now(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        self.into.put_data(data)
        return len(data)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        self.write_now(data)

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.into.put_eof()
        await trio.lowlevel.checkpoint()


class CountingPlan(PlanTransport):
    """A plan launcher whose requests arrive through ``CountedWrites``."""

    def __init__(self, real: Any, **options: Any) -> None:
        super().__init__(real, **options)
        self.stdin: CountedWrites | None = None

    @asynccontextmanager
    async def open(self, name: str) -> AsyncIterator[Pipe]:
        requests = trio.testing.MemoryReceiveStream()
        events, from_launcher = trio.testing.memory_stream_one_way_pair()
        self.stdin = CountedWrites(requests)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve, requests, events)
            yield Pipe(self.stdin, from_launcher)
            nursery.cancel_scope.cancel()


def test_Engine_sends_what_one_scheduling_pass_starts_in_one_write() -> None:
    # 8 commands end at the same instant and 8 start in their place: the launcher is woken once for the 8
    # requests, not 8 times (a write each was a system call and a wake-up of the launcher, per command).
    engine = Engine("test-run", clock=MockClock(autojump_threshold=0.001))
    engine.start()
    plans: list[CountingPlan] = []

    def plan(real: Any) -> CountingPlan:
        plans.append(CountingPlan(real, facts=dict(FACTS), outcome=ok_in(1)))
        return plans[-1]

    try:
        goal = Goal(engine, run_id="test-run", resume=False, transport_for=plan)
        goal.setRunner(goal.local(max_jobs=8))
        for index in range(24):
            goal.schd("work", name=f"c{index}")
        assert {r.status for r in goal.issue().sync()} == {"ok"}
    finally:
        engine.cancel()
        engine.shutdown()
        assert engine.join(timeout=10)
    stdin = plans[0].stdin
    assert stdin is not None
    runs = [write.count(b'"op":"run"') for write in stdin.writes if b'"op":"run"' in write]
    assert runs == [8, 8, 8], runs
