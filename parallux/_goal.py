"""``goal``: the runtime object a config drives. It lives in the main thread and talks to the engine thread.

Registration (``schd``) is pure main-thread bookkeeping, so registering 100,000 commands costs no thread
crossings; ``issue``/``run`` hand whole groups to the engine in one call each.
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from . import _forks
from . import _options as opt
from ._command_options import refuse_positionals
from . import _transfer
from ._arguments import Arguments
from ._attributes import TypoChecked
from ._errors import ConfigError, OutsideRuntimeError, ParalluxError
from ._handles import Command, Group
from ._option import signature_of
from ._pool import TransportFor
from ._probes import Probes
from ._runner import Runner, RunnerStatus
from ._runner_options import RUNNER, SLURM, SSH
from ._submission import Submissions
from ._transfer import Transfer

if TYPE_CHECKING:
    from ._engine import Engine

HALT_MODES = ("never", "soon", "now")
# the runner methods' signatures, from the option tables (``inspect.signature(goal.ssh)`` shows them)
LOCAL = signature_of(RUNNER.parameters({"name": "local"}))
SSH_RUNNER = signature_of(RUNNER.parameters()[:1], SSH.parameters(), RUNNER.parameters()[1:])
SLURM_RUNNER = signature_of(RUNNER.parameters()[:1], SLURM.parameters(), RUNNER.parameters(positional=False)[1:])
F = TypeVar("F", bound=Callable[..., Any])
SchedulerFn = Callable[[list[Runner], int], "Runner | str | None"]


def signed(signature: inspect.Signature) -> Callable[[F], F]:
    """Give a method taking ``*args, **options`` the signature its callers (and ``opt.checked``) see."""
    def decorate(fn: F) -> F:
        fn.__signature__ = signature  # type: ignore[attr-defined]
        return fn
    return decorate


def given(signature: inspect.Signature, this: Any, args: tuple[Any, ...], options: dict[str, Any]) -> dict[str, Any]:
    """The options a call gave, by name (``self`` left out; a call Python would refuse raises TypeError, which
    ``opt.checked`` makes a ConfigError)."""
    arguments = signature.bind(this, *args, **options).arguments
    del arguments["self"]
    return arguments



class Goal(TypoChecked):
    """The controlled runtime: runners, limits, environment and command submission."""

    _label = "goal"

    def __init__(self, engine: Engine, *, argv: Sequence[str] = (), run_id: str, resume: bool = False,
                 retries: int = 0, dry_run: bool = False, transport_for: TransportFor = lambda transport: transport
                 ) -> None:
        self._engine = engine
        self._run_id = run_id
        # True under --dry-run: nothing runs, so a config should skip its own side effects too (writing a
        # summary of "planned" results over real ones, say). Read-only, as argv and args: the proxy a config
        # holds refuses every assignment.
        self.dry_run = dry_run
        self.argv: list[str] = list(argv)
        self.args: dict[str, str] = dict(a.split("=", 1) for a in self.argv if "=" in a)
        self._arguments = Arguments(self.args, show=print_flushed if dry_run else None)
        self._submissions = Submissions(engine, self._arguments, run_id=run_id, resume=resume, retries=retries,
                                        dry_run=dry_run, transport_for=transport_for)
        self._pool = self._submissions.pool
        self._commands = self._submissions.registrar
        self._probes = Probes(engine, submitted=self._submissions.submitted,
                              show=print_flushed if dry_run else None)

    @opt.checked("goal.arg()")
    def arg(self, name: str, default: Any = None, type: Callable[[str], Any] = str, help: str | None = None
            ) -> Any:
        """The value of ``name=`` on the command line converted by ``type`` (str, int, float, bool or a
        function of the text), or ``default``. Once the config declared one, every ``key=`` on the command
        line must be declared (checked at its first command, or its end: see ``_arguments``)."""
        return self._arguments.declare(name, default, type, help)

    # -- runners -----------------------------------------------------------------------------------------------

    @opt.checked("goal.local()", noun="option")
    @signed(LOCAL)
    def local(self, *args: Any, **options: Any) -> Runner:
        """A runner on this machine; its options are ``_runner_options.RUNNER``'s."""
        return self._pool.local(given(LOCAL, self, args, options))

    @opt.checked("goal.ssh()", noun="option")
    @signed(SSH_RUNNER)
    def ssh(self, *args: Any, **options: Any) -> Runner:
        """A runner on another machine, reached over one SSH connection; connects now. Its options are the
        runner options and ``_runner_options.SSH``'s."""
        return self._pool.add(self._pool.ssh_runner(given(SSH_RUNNER, self, args, options)))

    @opt.checked("goal.slurm()", noun="option")
    @signed(SLURM_RUNNER)
    def slurm(self, *args: Any, **options: Any) -> Runner:
        """A runner on a Slurm cluster: one allocation (submitted now; inside one, with ``nodes=None``, that
        one), a launcher on each of its nodes; ``max_jobs`` and the core pool are per node. ``login``: an SSH
        runner (or its name, or a host) whose login host runs Slurm's commands, for a cluster reached over SSH.
        Its options are ``_runner_options.SLURM``'s and the runner options."""
        return self._pool.slurm(given(SLURM_RUNNER, self, args, options))

    @opt.checked("goal.setRunner()")
    def setRunner(self, runners: Runner | str | Sequence[Runner | str]) -> None:
        """The pool the scheduler chooses from, in order; an unknown name creates ``goal.ssh(name)``."""
        self._pool.set(runners)

    @opt.checked("goal.put()")
    def put(self, local: str | os.PathLike[str], remote: str | os.PathLike[str]) -> dict[str, Transfer]:
        """Copy a local file or tree to every runner of the pool at once (a campaign's base files): runner
        name -> what was sent there. ``remote`` is resolved on each runner as ``runner.put()`` does."""
        pool = self._pool.current()
        source = opt.local_path(local, "goal.put()")
        target = opt.remote_text(remote, "goal.put()")
        try:
            done = self._engine.call_async(_transfer.put_everywhere, [r._seats for r in pool], source, target,
                                           self._engine.tell_transfer)
        except ParalluxError as exc:  # raised in the engine thread: its Trio frames mean nothing to a config
            raise exc.with_traceback(None) from None
        return {name: Runner._planned_or(transfer) for name, transfer in done.items()}

    @opt.checked("goal.runner_status()")
    def runner_status(self, runner: Runner | str | None = None) -> RunnerStatus | dict[str, RunnerStatus]:
        """The status of one runner, or a mapping name -> status for every runner in the pool."""
        if runner is not None:
            return self._pool.runner_of(runner).status()
        return {r.name: r.status() for r in self._pool.current()}

    # -- settings -----------------------------------------------------------------------------------------------

    @opt.checked("goal.setParallel()")
    def setParallel(self, n: int | None) -> None:
        """At most ``n`` commands run at once across all runners (None: only the runners' own limits)."""
        self._engine.call(self._engine.set_parallel, opt.optional_int(n, "setParallel(n)"))

    @opt.checked("goal.setEnv()")
    def setEnv(self, key: str, value: str) -> None:
        """A variable for every command on every runner submitted from now on."""
        opt.env_pair(key, value, "setEnv()")
        self._commands.env = {**self._commands.env, key: value}  # a new dict: registered commands keep theirs

    @opt.checked("goal.setScheduler()")
    def setScheduler(self, fn: SchedulerFn | None) -> None:
        """``fn(runners, threads)`` picks one of the runners that can take the command now, or None to wait."""
        if fn is not None and not callable(fn):
            raise ConfigError(f"setScheduler() needs a function fn(runners, threads), not {fn!r}")
        self._engine.call(self._engine.set_policy, fn)

    @opt.checked("goal.setRetries()")
    def setRetries(self, n: int, retry_on: Any = None) -> None:
        """Default number of reruns for commands registered from now on that fail or lose their runner
        (``retries=`` overrides), and which outcomes are retried (``retry_on=`` overrides; None: failed,
        timeout and error)."""
        self._commands.set_retries(opt.positive_int(n, "setRetries(n)", minimum=0),
                                   opt.retry_on(retry_on, "setRetries(retry_on=)"))

    @opt.checked("goal.setHalt()")
    def setHalt(self, mode: str, failures: int = 1) -> None:
        """What a failure does: "never" keep going; "soon" start nothing new once ``failures`` commands
        failed and let running ones finish; "now" also stop the running ones."""
        if mode not in HALT_MODES:
            raise ConfigError(f"setHalt() mode must be one of {', '.join(HALT_MODES)}, not {mode!r}")
        self._engine.call(self._engine.set_halt, mode, opt.positive_int(failures, "setHalt(failures=)"))

    @opt.checked("goal.setOrder()")
    def setOrder(self, mode: str, seed: int | None = None) -> None:
        """How the executions of the benchmarks in groups issued from now on are queued: "interleave" (round
        by round: warm-ups, then repetition 1 of every benchmark, 2, ...), "shuffle" (each round in a random
        order, from ``seed`` or a seed drawn now; the run log and the summary give it) or "grouped" (each
        benchmark's executions back to back)."""
        self._submissions.order.set(mode, seed)

    @opt.checked("goal.setNoiseCheck()")
    def setNoiseCheck(self, mode: str) -> None:
        """What a run that measures (a benchmark, ``metrics=``) does about a noisy machine -- a governor other
        than performance, turbo on, a load at the start, SMT siblings of pooled CPUs outside the pools:
        "warn" (the default: one line per machine), "strict" (a ConfigError before anything measures) or
        "off"."""
        self._engine.call(self._engine.environments.set_mode, mode)

    # -- the machines ------------------------------------------------------------------------------------------

    @opt.checked("goal.probe()")
    def probe(self, name: str, command: str | list[str]) -> None:
        """Run ``command`` once on every machine of the run, before its commands there, and keep its output
        (the first 4 KiB) in the run log: ``goal.probe("gcc", "gcc --version")``."""
        self._probes.declare(name, command, self._commands.env)

    # -- commands ----------------------------------------------------------------------------------------------

    def schd(self, command: str | list[str] = opt.MISSING, *extra: Any, **options: Any) -> Command:
        """Register a command; nothing starts until ``issue()`` (or the end of the config)."""
        if command is opt.MISSING or extra:  # not @opt.checked: schd() is called 100,000 times
            refuse_positionals("goal.schd()", command, extra)
        return self._submissions.register(command, options, where="goal.schd()")

    @opt.checked("goal.issue()")
    def issue(self) -> Group:
        """Submit every command registered so far; returns their group handle."""
        return self._submissions.issue()

    def run(self, command: str | list[str] = opt.MISSING, *extra: Any, **options: Any) -> Command:
        """Submit one command now, without waiting; returns its handle."""
        if command is opt.MISSING or extra:  # not @opt.checked, as schd()
            refuse_positionals("goal.run()", command, extra)
        return self._submissions.run(command, options, where="goal.run()")


class GoalProxy:
    """``parallux.goal``: forwards to the running config's :class:`Goal`, or explains how to get one."""

    _current: Goal | None = None

    def __getattr__(self, name: str) -> Any:
        _forks.refuse()  # in a child the config forked, what goal registered would be lost, and waits hang
        current = GoalProxy._current
        if current is None:
            raise OutsideRuntimeError(
                "parallux.goal is only available inside the parallux runtime: run this config with "
                "`parallux config.py` (or `python3 -m parallux config.py`), not with plain `python3`")
        return getattr(current, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # Without this, `goal.dry_run = True` would quietly shadow the real value on the proxy.
        raise AttributeError(f"goal.{name} cannot be set: goal's attributes are parallux's")

    def __repr__(self) -> str:
        return f"<parallux.goal {'active' if GoalProxy._current else 'outside the runtime'}>"


def print_flushed(line: str) -> None:
    print(line, flush=True)


goal = GoalProxy()  # what ``from parallux import goal`` gives
