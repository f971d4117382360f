"""``after=`` checked at the call: the commands a command waits for, as the engine's commands.

A command handle stands for itself, a benchmark's for its executions (all of them must end ok), a group's for
its commands. A dependency is a handle that exists when its dependent is registered, and a handle's
dependencies never change afterwards, so dependencies cannot form a cycle: there is nothing to look for. What
can be wrong is what is passed (no handle, a handle of another run) and, for a command submitted at once
(``run()``), a dependency registered with ``schd()`` and not issued yet, which would leave it waiting for a
command that may never be submitted -- and a ``sync()`` of it waiting for ever.
"""

from __future__ import annotations

from typing import Any

from ._benchmarks import Benchmark
from ._engine._dependencies import NOT_STARTED
from ._errors import ConfigError
from ._handles import Command, Completion, Group
from ._order import executions_of
from ._status import Status

COLLECTIONS = (list, tuple, set, frozenset)


def dependencies_of(value: object, completion: Completion, name: str, where: str) -> tuple[Command, ...]:
    """The commands ``after=value`` names, each once, in the order given."""
    found: list[Command] = []
    for item in value if isinstance(value, COLLECTIONS) else (value,):
        commands = _commands_of(item)
        if commands is None:
            raise ConfigError(f"{where}: after= of command {name!r} must be a command handle, a group handle or a "
                              f"list of them, not {type(item).__name__} ({item!r})")
        if any(command._completion is not completion for command in commands):
            what = f"{item.name!r} is a handle" if not isinstance(item, Group) else "a group handle it names is one"
            raise ConfigError(f"{where}: after= of command {name!r}: {what} of another run (of another goal), which "
                              f"this run cannot wait for")
        found.extend(commands)
    return tuple(dict.fromkeys(found))


def _commands_of(item: object) -> list[Command] | None:
    if isinstance(item, Command):
        return [item]
    if isinstance(item, Benchmark):
        return list(item.executions)
    if isinstance(item, Group):
        return list(item.commands)
    return None


def refuse_unissued(handle: Any, where: str) -> None:
    """``run()``/``runner.run()`` of a command whose dependency was registered with ``schd()`` and not issued."""
    for dependency in executions_of(handle)[0].after:
        if dependency.group is None:
            name = dependency.bench.name if dependency.bench is not None else dependency.name
            raise ConfigError(f"{where}: command {handle.name!r} runs after {name!r}, which was registered with "
                              f"schd() and not issued: issue it first (goal.issue()), or register {handle.name!r} "
                              f"with schd() too")


def summary_lines(commands: list[Command], shown: int = 5) -> list[str]:
    """The summary's line about the commands never started because a dependency did not end ok: how many,
    the first names, and why the first was not."""
    waited = [result for command in commands if (result := command.result) is not None
              and result.status == Status.CANCELLED and (result.error or "").startswith(NOT_STARTED + "its dep")]
    if not waited:
        return []
    names = ", ".join(repr(result.name) for result in waited[:shown]) + (", ..." if len(waited) > shown else "")
    plural = "s" if len(waited) > 1 else ""
    return [f"  not started: {len(waited)} command{plural} whose dependencies did not all end ok ({names}); "
            f"{waited[0].name!r}: {(waited[0].error or '').removeprefix(NOT_STARTED)}"]
