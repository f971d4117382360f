"""``after=`` dependencies in the engine (SPEC 18): the real engine and Goal over plan launchers on Trio's
virtual clock, so that a command that "takes" 10 s takes 10 virtual seconds. What the CLI shows of them (the
run log, show, the dry run, --resume) is in tests/integration/local/test_after_cli.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from parallux import ConfigError
from parallux._transports._plan import planned
from tests.plan_engine import Run


class Outcomes:
    """A plan launcher's outcome by command text (``name:seconds`` or ``name:seconds:fail``), recording every
    command text it was asked to run: a command never asked for was never started."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, request: dict[str, Any]) -> tuple[float, str, int | None]:
        text = request["command_text"]
        self.asked.append(text)
        parts = text.split(":")
        return (float(parts[1]), "failed", 1) if parts[2:] == ["fail"] else (float(parts[1]), "ok", 0)


@pytest.fixture
def run_of() -> Iterator[Any]:
    runs: list[Run] = []

    def make(outcome: Any) -> Run:
        runs.append(Run(outcome))
        return runs[-1]

    yield make
    for run in runs:
        run.close()


def test_after_a_chain_waits_for_its_dependencies_while_other_commands_run(run_of: Any) -> None:
    run = run_of(Outcomes())
    goal = run.goal
    goal.local(max_jobs=4)
    build = goal.schd("build:10", name="build")
    runs = [goal.schd(f"run{i}:2", name=f"run{i}", after=build) for i in range(3)]
    summary = goal.schd("summary:1", name="summary", after=runs)
    others = [goal.schd(f"other{i}:3", name=f"other{i}") for i in range(2)]
    goal.issue().sync()
    t0 = build.result.start_time
    assert [o.result.start_time - t0 for o in others] == [0, 0]  # no barrier: they ran while build did
    assert all(r.result.start_time == build.result.end_time for r in runs)
    assert summary.result.start_time == max(r.result.end_time for r in runs)
    assert summary.after == tuple(runs) and runs[0].after == (build,)


def test_after_a_waiting_command_holds_no_slot_and_blocks_no_command_behind_it(run_of: Any) -> None:
    run = run_of(Outcomes())
    goal = run.goal
    goal.local(max_jobs=2)
    build = goal.schd("build:10", name="build")
    waiting = goal.schd("waiting:1", name="waiting", after=build)  # the same class as the ones behind it
    behind = [goal.schd(f"behind{i}:1", name=f"behind{i}") for i in range(6)]
    goal.issue().sync()
    # One slot is build's; the other runs the six one after another, from the start, while "waiting" waits.
    assert [b.result.start_time - build.result.start_time for b in behind] == [0, 1, 2, 3, 4, 5]
    assert waiting.result.start_time == build.result.end_time


def test_after_a_released_command_takes_its_place_in_submission_order(run_of: Any) -> None:
    run = run_of(Outcomes())
    goal = run.goal
    a, b = goal.local(name="a", max_jobs=1), goal.local(name="b", max_jobs=1)
    goal.setRunner([a, b])
    build = goal.schd("build:1.5", name="build", runner=b)
    first = goal.schd("first:1", name="first", runner=a, after=build)
    later = [goal.schd(f"later{i}:1", name=f"later{i}", runner=a) for i in range(4)]
    goal.issue().sync()
    # Released at t=1.5 while the later ones queue on a: it goes before those submitted after it.
    t0 = build.result.start_time
    assert first.result.start_time - t0 == 2
    assert [r.result.start_time - t0 for r in later] == [0, 1, 3, 4]


def test_after_a_failure_cancels_its_dependents_transitively_naming_it_without_starting_them(run_of: Any) -> None:
    outcomes = Outcomes()
    run = run_of(outcomes)
    goal = run.goal
    goal.local(max_jobs=4)
    build = goal.schd("build:2:fail", name="build")
    runs = [goal.schd(f"run{i}:1", name=f"run{i}", after=build) for i in range(3)]
    summary = goal.schd("summary:1", name="summary", after=runs)
    other = goal.schd("other:5", name="other")
    group = goal.issue()
    with pytest.raises(Exception):
        group.sync()
    assert build.result.status == "failed" and other.result.status == "ok"
    for waiter in (*runs, summary):
        assert waiter.result.status == "cancelled" and waiter.result.start_time is None
        assert waiter.result.attempts == []
    assert all("'build'" in r.result.error and "failed" in r.result.error for r in runs)
    assert "'run0'" in summary.result.error and "'build'" in summary.result.error
    assert sorted(outcomes.asked) == ["build:2:fail", "other:5"]


def test_after_cancels_a_long_chain_without_recursing_once_per_link(run_of: Any) -> None:
    run = run_of(Outcomes())
    goal = run.goal
    goal.local()
    head = previous = goal.schd("head:1:fail", name="head", check=False)
    for index in range(3000):
        previous = goal.schd(f"link{index}:1", after=previous, check=False)
    goal.issue().sync()
    assert head.result.status == "failed" and previous.result.status == "cancelled"


def test_after_a_benchmark_waits_for_every_execution_and_a_group_for_every_command(run_of: Any) -> None:
    run = run_of(Outcomes())
    goal = run.goal
    goal.local(max_jobs=8)
    bench = goal.schd("bench:2", name="bench", repeat=3, warmup=1, work_relpath="bench")
    after_bench = goal.schd("after_bench:1", name="after_bench", after=bench)
    goal.setOrder("grouped")
    first = goal.issue()
    after_group = goal.run("after_group:1", name="after_group", after=first)
    after_both = goal.schd("both:1", name="both", after=[after_group, bench], repeat=2)
    goal.issue().sync()
    ends = [e.result.end_time for e in bench.executions]
    assert after_bench.result.start_time == max(ends) and len(after_bench.after) == 4
    assert after_group.result.start_time == after_bench.result.end_time
    assert all(e.result.start_time == after_group.result.end_time for e in after_both.executions)


def test_after_works_across_runners(run_of: Any) -> None:
    run = run_of(Outcomes())
    goal = run.goal
    a, b = goal.local(name="a"), goal.local(name="b")
    goal.setRunner([a, b])
    build = goal.schd("build:3", name="build", runner=a)
    use = goal.schd("use:1", name="use", runner=b, after=build)
    goal.issue().sync()
    assert (build.result.runner_name, use.result.runner_name) == ("a", "b")
    assert use.result.start_time == build.result.end_time


def test_after_a_halt_cancels_the_waiting_dependents_and_the_run_still_ends(run_of: Any) -> None:
    outcomes = Outcomes()
    run = run_of(outcomes)
    goal = run.goal
    goal.local(max_jobs=4)
    goal.setHalt("soon", 1)
    build = goal.schd("build:5", name="build")
    waiting = goal.schd("waiting:1", name="waiting", after=build)
    goal.schd("bad:1:fail", name="bad")
    goal.issue()
    assert run.engine.wait_idle(10)
    assert build.result.status == "ok"  # (it was running: a "soon" halt lets it finish)
    assert waiting.result.status == "cancelled" and waiting.result.error == run.engine.halt_reason
    assert "waiting:1" not in outcomes.asked


def test_after_a_dry_run_plans_dependencies_first(run_of: Any) -> None:
    run = run_of(planned)
    goal = run.goal
    goal.local(max_jobs=8)
    started: list[str] = []  # the dry run prints a command's plan line when it "starts"
    run.engine.observers.append(lambda event, command, **_: started.append(command.name) if event == "started"
                                else None)
    summary = goal.schd("summary", name="summary", after=[build := goal.schd("build", name="build")])
    runs = [goal.schd(f"run{i}", name=f"run{i}", after=[build]) for i in range(3)]
    last = goal.schd("last", name="last", after=[summary, *runs])
    results = goal.issue().sync()
    assert [r.status for r in results] == ["planned"] * 6 and last.result.status == "planned"
    assert started[0] == "build" and started[-1] == "last" and set(started[1:5]) == {"summary", "run0", "run1", "run2"}


@pytest.mark.parametrize(("after", "message"), [
    ("build", "after= of command 'x' must be a command handle, a group handle or a list of them, not str"),
    ([1], "after= of command 'x' must be a command handle, a group handle or a list of them, not int"),
    ([[]], "not list"),
])
def test_after_refuses_what_is_no_handle_naming_the_command(run_of: Any, after: Any, message: str) -> None:
    run = run_of(Outcomes())
    run.goal.local()
    with pytest.raises(ConfigError, match="goal.schd\\(\\): ") as caught:
        run.goal.schd("x:1", name="x", after=after)
    assert message in str(caught.value)


def test_after_refuses_a_handle_of_another_run(run_of: Any) -> None:
    first, second = run_of(Outcomes()), run_of(Outcomes())
    first.goal.local()
    second.goal.local()
    foreign = first.goal.schd("build:1", name="build")
    with pytest.raises(ConfigError, match="after= of command 'x': 'build' is a handle of another run"):
        second.goal.schd("x:1", name="x", after=foreign)


def test_after_refuses_to_submit_a_command_before_its_dependency(run_of: Any) -> None:
    run = run_of(Outcomes())
    goal = run.goal
    goal.local()
    build = goal.schd("build:1", name="build")
    with pytest.raises(ConfigError, match="goal.run\\(\\): command 'x' runs after 'build', which was registered "
                                          "with schd\\(\\) and not issued"):
        goal.run("x:1", name="x", after=build)
    goal.schd("y:1", name="y", after=[build, goal.issue()])  # (issued now: fine, a group included)
    assert [r.status for r in goal.issue().sync()] == ["ok"]
