"""``Registrar``: a command registered like the one before reuses its spec without making one (a campaign's
millionth ``schd()``), and only while nothing that decides its spec or its runners changed: its options, the
goal's variables, the pool; a command whose runners could refuse it for what their launchers say is checked
every time."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from parallux._errors import ConfigError
from tests.plan_engine import Run, ok_in


@pytest.fixture
def run() -> Iterator[Run]:
    run = Run(ok_in(1.0))
    yield run
    run.close()


def test_registration_reuses_the_spec_of_a_command_registered_alike(run: Run) -> None:
    goal = run.goal
    goal.setRunner(goal.local(name="a", max_jobs=2))
    first, second = goal.schd("true", work_relpath="1"), goal.schd("true", work_relpath="2", name="two")
    assert second._spec is first._spec and second.name == "two" and first.name == "job1"
    assert goal.schd("true", timeout=5)._spec is not first._spec  # another option, another spec
    goal.setEnv("A", "1")
    after_env = goal.schd("true")
    assert after_env._spec is not first._spec and after_env.base_env == {"A": "1"}
    goal.setRunner(goal.local(name="b"))
    moved = goal.schd("true")
    assert moved._spec is not after_env._spec and [s.name for s in moved.candidates] == ["b"]
    goal.issue().sync()
    assert [c.result.status for c in (first, second, after_env, moved)] == ["ok"] * 4


def test_registration_checks_a_resource_request_every_time(run: Run) -> None:
    """A command asking for memory is checked against what the runner's launcher said, each time (the hello
    may come between two registrations): never taken from an earlier registration."""
    goal = run.goal
    goal.setRunner(goal.local(name="a", memory_pool="1G"))
    goal.schd("true", memory="100M")
    with pytest.raises(ConfigError, match="can never run"):
        goal.schd("true", memory="2G")
    with pytest.raises(ConfigError, match="can never run"):  # (the same again: refused again)
        goal.schd("true", memory="2G")
    goal.issue().sync()


def test_registration_with_unhashable_options_still_shares_equal_specs(run: Any) -> None:
    goal = run.goal
    goal.setRunner(goal.local(name="a"))
    one, two = goal.schd("true", env={"X": "1"}), goal.schd("true", env={"X": "1"})
    assert one._spec is two._spec and goal.schd("true", env={"X": "2"})._spec is not one._spec
    goal.issue().sync()
