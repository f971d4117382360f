"""The runners of a run and the pool the scheduler chooses from (main thread).

Each runner is made of three parts: a transport (how to reach its launcher), a seat (the engine's side:
slots, cores, launcher client) and the config's handle, :class:`~parallux._runner.Runner`. The pool picks
the transport for each kind of runner -- or, in a dry run and in the engine's tests, what stands in for it.
"""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from . import _options as opt
from ._engine._seat import Seat
from ._errors import ConfigError, ParalluxError, RunnerError
from ._lifeline import NO_RELAUNCH, Batch, Relaunch, Restarts
from ._runner import Runner, SshRunner, Submit
from ._runner_options import RUNNER, SLURM, SSH
from ._transports import Transport
from ._transports._local import LocalTransport

if TYPE_CHECKING:
    from ._engine import Engine

TransportFor = Callable[[Transport], Transport]


class Pool:
    """The runners by name, and the pool (a tuple of them, in order)."""

    def __init__(self, engine: Engine, submit: Submit, transport_for: TransportFor, dry_run: bool = False) -> None:
        self._engine = engine
        self._dry_run = dry_run
        self._submit = submit
        self._transport_for = transport_for  # a dry run: each runner's launcher is a plan (see _transports)
        self.runners: dict[str, Runner] = {}
        self.pool: tuple[Runner, ...] | None = None

    # -- making runners --------------------------------------------------------------------------------

    def local(self, given: dict[str, Any]) -> Runner:
        """A local runner of ``goal.local()``'s options."""
        options = RUNNER.checked(given, "goal.local()", {"name": "local"})
        name = self._new_name(options["name"])
        seat = self._seat(name, LocalTransport(), options, relaunch=Restarts())
        return self.add(Runner(seat, self._submit, self._engine))

    def ssh_runner(self, given: dict[str, Any]) -> Runner:
        """An SSH runner of ``goal.ssh()``'s options, not yet connected."""
        first_ssh = "parallux._transports._ssh" not in sys.modules
        from ._transports._ssh import SshTransport  # imported only when used: local-only runs never load asyncssh
        if first_ssh:  # asyncssh's import graph lives until exit, too: keep it out of every collection (see _cli)
            gc.freeze()
        options = RUNNER.checked(RUNNER.part(given), "goal.ssh()")
        name = self._new_name(options["name"])
        transport = SshTransport(name, SSH.part(given))  # (the transport checks its options)
        seat = self._seat(name, transport, options)
        return SshRunner(seat, self._submit, self._engine, transport)

    def slurm(self, given: dict[str, Any]) -> Runner:
        """A Slurm runner of ``goal.slurm()``'s options: its allocation submitted now (a refusal is a
        ConfigError), a seat per node; with ``login``, through that SSH runner's login host."""
        from ._slurm_runner import SlurmRunner
        from ._transports import _slurm
        from ._transports._slurm._commands import Request
        options = RUNNER.checked(RUNNER.part(given), "goal.slurm()")  # every option checked before a job exists
        name = self._new_name(options["name"])
        slurm = SLURM.checked(SLURM.part(given), "goal.slurm()")
        shell = self._login_shell(slurm["login"], name) if slurm["login"] is not None else None
        request = Request.of(name, slurm)
        allocation = _slurm.allocate(request, dry_run=self._dry_run, shell=shell)
        if self._dry_run:
            print(_slurm.plan_line(allocation), flush=True)
        try:
            allocation.notify = self._engine.observers.notice
            allocation.demand = self._engine.has_work
            count = len(allocation.node_names) if allocation.node_names else allocation.request.nodes or 1
            nodes = [_slurm.SlurmTransport(allocation, index, slurm["python"]) for index in range(count)]
            seats = [self._seat(name, node, options, relaunch=node.relaunch, batch=allocation) for node in nodes]
            runner = SlurmRunner(seats, self._submit, self._engine, allocation)
            errors = self._engine.call_async(self._engine.add_seats, seats)
            failed = [error for error in errors if error is not None]
            if failed:
                raise failed[0].with_traceback(None) from None
        except BaseException:  # (Ctrl-C too): the job must not outlive this call
            allocation.cancel_now()
            raise
        self.runners[name] = runner
        return runner

    def _seat(self, name: str, transport: Transport, options: Mapping[str, Any], relaunch: Relaunch = NO_RELAUNCH,
              batch: Batch | None = None) -> Seat:
        """A runner's seat on ``transport`` -- or on what stands in for it (a dry run's plan launcher, a test
        double), which is there at once and never again: no relaunch, no batch allocation to wait for. The
        batch's time limit still holds (registration checks timeouts against it)."""
        planned = self._transport_for(transport)
        limit = batch.time_limit if batch is not None else None
        if planned is not transport:
            relaunch, batch = NO_RELAUNCH, None
        return Seat(name, planned, options, relaunch=relaunch, batch=batch, time_limit=limit)

    def _login_shell(self, login: Any, name: str) -> Any:
        """``goal.slurm(login=...)``: the shell of that SSH runner's login host -- a runner, a runner's name,
        or a host, which connects as ``setRunner()`` does for a name never created (``goal.ssh(host)``)."""
        if isinstance(login, str) and login not in self.runners:
            self.runner_of(login, create=True)
        runner = self.runner_of(login)
        if not isinstance(runner, SshRunner):
            raise ConfigError(f"goal.slurm({name!r}): login= must be an SSH runner (goal.ssh()), its name or a "
                              f"host, not {runner.describe()}")
        from ._transports._slurm._shell import Shell
        if self._dry_run:
            return Shell()  # a dry run asks nothing of the login host (and opened no connection to it)
        from ._transports._ssh._login import LoginShell
        shell = LoginShell(runner._ssh, self._engine, runner.name)
        try:
            self._engine.call_async(shell.start_watcher)
        except OSError as exc:
            raise RunnerError(f"goal.slurm({name!r}): {exc}") from None
        return shell

    def _new_name(self, name: object) -> str:
        text = opt.name(name, "a runner's name")
        if text in self.runners:
            raise ConfigError(f"a runner named {text!r} already exists; runner names must be unique")
        return text

    def add(self, runner: Runner) -> Runner:
        """Start the runner's launcher (or connection) now; a failure is the config's error."""
        try:
            self._engine.call_async(self._engine.add_seat, runner._seat)
        except ParalluxError as exc:  # raised in the engine thread: its Trio frames mean nothing to a config
            raise exc.with_traceback(None) from None
        self.runners[runner.name] = runner
        return runner

    def _add_ssh_runners(self, names: list[str]) -> None:
        """``goal.ssh(name, host=name)`` for each name, connecting all at once. The ones that connect are
        runners of the run either way; if any fails, one RunnerError gives every failure."""
        runners = [self.ssh_runner({"name": name, "host": name}) for name in names]
        errors = self._engine.call_async(self._engine.add_seats, [runner._seat for runner in runners])
        for runner, error in zip(runners, errors):
            if error is None:
                self.runners[runner.name] = runner
        failed = [error for error in errors if error is not None]
        for error in failed:
            if not isinstance(error, ParalluxError):  # a bug, not a host that cannot be reached
                raise error
        if len(failed) == 1:
            raise failed[0].with_traceback(None) from None
        if failed:
            raise RunnerError(f"{len(failed)} of the {len(names)} runners setRunner() created cannot be "
                              "used:\n" + "\n".join(f"  {error}" for error in failed)) from None

    # -- the pool --------------------------------------------------------------------------------------

    def set(self, runners: Runner | str | Sequence[Runner | str]) -> None:
        """setRunner(): the pool, in order; an unknown name creates ``goal.ssh(name)``."""
        if not isinstance(runners, (Runner, str, Iterable)):
            raise ConfigError(f"setRunner() takes a runner, a runner's name or a list of them, not {runners!r}")
        items = [runners] if isinstance(runners, (Runner, str)) else list(runners)
        if not items:
            raise ConfigError("setRunner() needs at least one runner")
        new_names = list(dict.fromkeys(i for i in items if isinstance(i, str) and i not in self.runners))
        if len(new_names) > 1:
            self._add_ssh_runners(new_names)
        pool = tuple(self.runner_of(item, create=True) for item in items)
        if len(set(pool)) != len(pool):
            raise ConfigError(f"setRunner() lists a runner twice: {[r.name for r in pool]}")
        self.pool = pool

    def runner_of(self, item: Runner | str, create: bool = False) -> Runner:
        if isinstance(item, Runner):
            if self.runners.get(item.name) is not item:
                raise ConfigError(f"{item!r} does not belong to this run")
            return item
        if isinstance(item, str):
            if item in self.runners:
                return self.runners[item]
            if create:
                return self.add(self.ssh_runner({"name": item, "host": item}))
            raise ConfigError(f"no runner named {item!r}; the runners are: {sorted(self.runners)}")
        raise ConfigError(f"a runner is a runner object or a runner's name, not {item!r}")

    def current(self) -> tuple[Runner, ...]:
        """The pool; without setRunner(), the runner named ``local`` (made if need be)."""
        if self.pool is None:
            others = sorted(self.runners)
            self.pool = (self.runners.get("local") or self.local({}),)
            if others != ["local"] and others:
                print(f"parallux: note: setRunner() was not called, so commands run on the runner 'local' "
                      f"only (not on {', '.join(repr(n) for n in others if n != 'local')})", file=sys.stderr)
        return self.pool

    def states(self) -> list[tuple[str, str]]:
        """(name, what its line says when nothing runs there) for each runner of the pool: for the live
        display's thread, so one read of the pool, which the config may be setting meanwhile."""
        pool = self.pool
        return [(r.name, r._state()) for r in pool or ()]

