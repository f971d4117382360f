"""The config's commands on their way to the engine: registered by ``schd()``, handed over in groups by
``issue()``, one at a time by ``run()`` and ``runner.run()``, and what is left registered at the config's end.

Before the first command goes, the declared arguments are checked (an undeclared ``key=`` must stop the run
before anything starts); before a group goes, ``--resume`` looks for the records that make its commands
unnecessary. A group holding benchmarks goes as their executions, in the order ``setOrder()`` chose
(``_order``), after the run log's records about them. :class:`Goal` keeps the config's vocabulary; this keeps
the queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._after import refuse_unissued
from ._arguments import Arguments
from ._benchmarks import Benchmark
from ._errors import ConfigError
from ._handles import Command, Group
from ._order import Order, executions_of
from ._pool import Pool, TransportFor
from ._registration import Registrar
from ._resume import find_completed

if TYPE_CHECKING:
    from ._engine import Engine
    from ._runner import Runner


class Submissions:
    """Every command of a run, from its registration to its submission; owns the pool its runners come
    from, since ``runner.run()`` submits through here."""

    def __init__(self, engine: Engine, arguments: Arguments, *, run_id: str, resume: bool, retries: int,
                 dry_run: bool, transport_for: TransportFor) -> None:
        self._engine = engine
        self._arguments = arguments
        self.pool = Pool(engine, self.run_pinned, transport_for, dry_run)
        self.registrar = Registrar(self.pool, engine.completion, run_id, resume, retries, dry_run)
        self._registered: list[Command | Benchmark] = []
        self._groups: list[Group] = []
        self.order = Order()
        self.benchmarks: list[Benchmark] = []  # every benchmark submitted, for the summary
        self._measured = False  # the noise checks passed (a run measures once a benchmark or metrics= comes)

    def register(self, command: str | list[str], options: dict[str, Any], where: str) -> Command | Benchmark:
        handle = self.registrar.make(command, options, pin=None, where=where)
        self._registered.append(handle)
        return handle

    def issue(self) -> Group:
        handles, self._registered = self._registered, []
        return self.submit(handles)

    def run(self, command: str | list[str], options: dict[str, Any], where: str) -> Command | Benchmark:
        handle = self.registrar.make(command, options, pin=None, where=where)
        refuse_unissued(handle, where)
        self.submit([handle])
        return handle

    def run_pinned(self, runner: Runner, command: str | list[str], options: dict[str, Any]) -> Command | Benchmark:
        if "runner" in options:
            raise ConfigError(f"{runner.name}.run() is pinned to its runner; it takes no runner= option")
        handle = self.registrar.make(command, options, pin=self.pool.runner_of(runner),
                                     where=f"{runner.name}.run()")
        refuse_unissued(handle, f"{runner.name}.run()")
        self.submit([handle])
        return handle

    def submitted(self) -> bool:
        """Whether a command was submitted (a group issued, a command run)."""
        return bool(self._groups)

    def submit(self, handles: list[Command | Benchmark]) -> Group:
        self._arguments.check()
        if self.registrar.measuring and not self._measured:
            self._check_noise()
        group, records = self._group(handles)
        self._groups.append(group)
        find_completed([handle for handle in group.commands if handle.resume_check],
                       lambda seat, work_dirs: self._engine.call_async(seat.records, work_dirs),
                       warn=self._engine.observers.notice)
        if group.commands:
            self._engine.call(self._engine.submit, group, records)
        return group

    def _check_noise(self) -> None:
        """The run measures from now on: the machines' noise checks (a ConfigError under "strict")."""
        try:
            self._engine.call_async(self._engine.environments.check_noise)
        except ConfigError as exc:  # raised in the engine thread: its Trio frames mean nothing to a config
            raise exc.with_traceback(None) from None
        self._measured = True

    def _group(self, handles: list[Command | Benchmark]) -> tuple[Group, list[dict[str, Any]]]:
        """The group of these handles, and the run log's records to write before its commands are queued.
        Its benchmarks go as their executions, in the run's order, numbered in that order."""
        benchmarks = [handle for handle in handles if isinstance(handle, Benchmark)]
        if not benchmarks:
            return Group(handles, self._engine.completion), []  # type: ignore[arg-type]
        self.benchmarks += benchmarks
        commands = self.order.arrange(handles)
        for command in commands:
            if command.bench is not None:
                command.seq = self.registrar.next_seq()
        order = self.order.record()
        records = ([order] if order is not None else []) + [bench.record() for bench in benchmarks]
        return Group(commands, self._engine.completion, handles=handles), records

    def issue_leftovers(self) -> None:
        """At the config's end: what it registered and never issued goes now."""
        self._arguments.check()  # (a config that submitted nothing is checked here, at its end)
        if self._registered:
            self.issue()

    def all_commands(self) -> list[Command]:
        """Every command of the run (a benchmark's executions): submitted, and registered but never issued."""
        return [c for g in self._groups for c in g.commands] + [
            c for handle in self._registered for c in executions_of(handle)]
