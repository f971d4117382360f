"""``goal``: the runtime object a config drives. It lives in the main thread and talks to the engine thread.

Registration (``schd``) is pure main-thread bookkeeping, so registering 100,000 commands costs no thread
crossings; ``issue``/``run`` hand whole groups to the engine in one call each.
"""

from __future__ import annotations

import gc
import itertools
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from . import _options as opt
from . import _transfer
from ._cores import parse_core_layout
from ._errors import ConfigError, OutsideRuntimeError, ParalluxError, RunnerError
from ._handles import Command, Group, Result
from ._engine._seat import Seat
from ._inputs import Fingerprints
from ._resume import find_completed
from ._runner import Runner, RunnerStatus, SshRunner
from ._transfer import Transfer
from ._transports import Transport
from ._transports._local import LocalTransport

if TYPE_CHECKING:
    from ._engine import Engine

HALT_MODES = ("never", "soon", "now")
SchedulerFn = Callable[[list[Runner], int], "Runner | str | None"]


class Goal:
    """The controlled runtime: runners, limits, environment and command submission."""

    def __init__(self, engine: Engine, *, argv: Sequence[str] = (), run_id: str, resume: bool = False,
                 retries: int = 0, dry_run: bool = False,
                 transport_for: Callable[[Transport], Transport] = lambda transport: transport) -> None:
        self._engine = engine
        self._dry_run = dry_run
        self._transport_for = transport_for  # a dry run: each runner's launcher is a plan (see _transports)
        self._run_id = run_id
        self.argv: list[str] = list(argv)
        self.args: dict[str, str] = dict(a.split("=", 1) for a in self.argv if "=" in a)
        self._runners: dict[str, Runner] = {}
        self._pool: tuple[Runner, ...] | None = None
        self._env: dict[str, str] = {}
        self._registered: list[Command] = []
        self._groups: list[Group] = []
        self._relpaths: set[str] = set()
        self._seq = itertools.count(1)
        self._retries_default = retries
        self._retry_on_default: frozenset[str | int] | None = None
        self._resume = resume
        self._fingerprints = Fingerprints()

    @property
    def dry_run(self) -> bool:
        """True under ``--dry-run``: nothing runs, so a config should skip its own side effects too (writing a
        summary of "planned" results over real ones, say)."""
        return self._dry_run

    # -- runners -----------------------------------------------------------------------------------------------

    @opt.checked("goal.local()", noun="option")
    def local(self, name: str = "local", workspace: str | os.PathLike[str] | None = None,
              max_jobs: int | None = None, env: Mapping[str, str] | None = None, core_pool: Any = None,
              numa_nodes: Any = None, *, membind: bool = False) -> Runner:
        """A runner on this machine."""
        name = self._new_runner_name(name)
        seat = Seat(name, self._transport_for(LocalTransport()), **self._runner_options(
            workspace, max_jobs, env, core_pool, numa_nodes, membind))
        return self._add_runner(Runner(seat, self._run_pinned, self._engine))

    @opt.checked("goal.ssh()", noun="option", extra_keywords=opt.SSH_OPTIONS)
    def ssh(self, name: str, host: str | None = None, user: str | None = None, port: int | None = None,
            workspace: str | os.PathLike[str] | None = None, max_jobs: int | None = None,
            env: Mapping[str, str] | None = None, core_pool: Any = None, numa_nodes: Any = None, *,
            membind: bool = False, **ssh_options: Any) -> Runner:
        """A runner on another machine, reached over one SSH connection; connects now."""
        return self._add_runner(self._ssh_runner(name, host, user, port, workspace, max_jobs, env, core_pool,
                                                 numa_nodes, membind=membind, **ssh_options))

    def _ssh_runner(self, name: str, host: str | None = None, user: str | None = None, port: int | None = None,
                    workspace: str | os.PathLike[str] | None = None, max_jobs: int | None = None,
                    env: Mapping[str, str] | None = None, core_pool: Any = None, numa_nodes: Any = None, *,
                    membind: bool = False, **ssh_options: Any) -> Runner:
        """The runner ``ssh()`` creates, not yet connected."""
        first_ssh = "parallux._transports._ssh" not in sys.modules
        from ._transports._ssh import SshTransport  # imported only when used: local-only runs never load asyncssh
        if first_ssh:  # asyncssh's import graph lives until exit, too: keep it out of every collection (see _cli)
            gc.freeze()
        name = self._new_runner_name(name)
        transport = SshTransport(name, host=host, user=user, port=port, ssh_options=ssh_options)
        seat = Seat(name, self._transport_for(transport), **self._runner_options(
            workspace, max_jobs, env, core_pool, numa_nodes, membind))
        return SshRunner(seat, self._run_pinned, self._engine)

    def _new_runner_name(self, name: object) -> str:
        text = opt.name(name, "a runner's name")
        if text in self._runners:
            raise ConfigError(f"a runner named {text!r} already exists; runner names must be unique")
        return text

    def _runner_options(self, workspace: Any, max_jobs: Any, env: Any, core_pool: Any, numa_nodes: Any,
                        membind: Any) -> dict[str, Any]:
        return {"workspace": opt.path(workspace, "workspace"),
                "max_jobs": opt.optional_int(max_jobs, "max_jobs"),
                "env": opt.environment(env, "a runner's env"),
                "layout": parse_core_layout(core_pool, numa_nodes),
                "membind": opt.boolean(membind, "membind")}

    def _add_runner(self, runner: Runner) -> Runner:
        try:
            self._engine.call_async(self._engine.add_seat, runner._seat)
        except ParalluxError as exc:  # raised in the engine thread: its Trio frames mean nothing to a config
            raise exc.with_traceback(None) from None
        self._runners[runner.name] = runner
        return runner

    @opt.checked("goal.setRunner()")
    def setRunner(self, runners: Runner | str | Sequence[Runner | str]) -> None:
        """The pool the scheduler chooses from, in order; an unknown name creates ``goal.ssh(name)``."""
        if not isinstance(runners, (Runner, str, Iterable)):
            raise ConfigError(f"setRunner() takes a runner, a runner's name or a list of them, not {runners!r}")
        items = [runners] if isinstance(runners, (Runner, str)) else list(runners)
        if not items:
            raise ConfigError("setRunner() needs at least one runner")
        new_names = list(dict.fromkeys(i for i in items if isinstance(i, str) and i not in self._runners))
        if len(new_names) > 1:
            self._add_ssh_runners(new_names)
        pool = tuple(self._runner_of(item, create=True) for item in items)
        if len(set(pool)) != len(pool):
            raise ConfigError(f"setRunner() lists a runner twice: {[r.name for r in pool]}")
        self._pool = pool

    def _add_ssh_runners(self, names: list[str]) -> None:
        """``goal.ssh(name, host=name)`` for each name, connecting all at once. The ones that connect are
        runners of the run either way; if any fails, one RunnerError gives every failure."""
        runners = [self._ssh_runner(name, host=name) for name in names]
        errors = self._engine.call_async(self._engine.add_seats, [runner._seat for runner in runners])
        for runner, error in zip(runners, errors):
            if error is None:
                self._runners[runner.name] = runner
        failed = [error for error in errors if error is not None]
        for error in failed:
            if not isinstance(error, ParalluxError):  # a bug, not a host that cannot be reached
                raise error
        if len(failed) == 1:
            raise failed[0].with_traceback(None) from None
        if failed:
            raise RunnerError(f"{len(failed)} of the {len(names)} runners setRunner() created cannot be "
                              "used:\n" + "\n".join(f"  {error}" for error in failed)) from None

    def _runner_of(self, item: Runner | str, create: bool = False) -> Runner:
        if isinstance(item, Runner):
            if self._runners.get(item.name) is not item:
                raise ConfigError(f"{item!r} does not belong to this run")
            return item
        if isinstance(item, str):
            if item in self._runners:
                return self._runners[item]
            if create:
                return self.ssh(item, host=item)
            raise ConfigError(f"no runner named {item!r}; the runners are: {sorted(self._runners)}")
        raise ConfigError(f"a runner is a runner object or a runner's name, not {item!r}")

    def _current_pool(self) -> tuple[Runner, ...]:
        if self._pool is None:
            others = sorted(self._runners)
            self._pool = (self._runners.get("local") or self.local(),)
            if others != ["local"] and others:
                print(f"parallux: note: setRunner() was not called, so commands run on the runner 'local' "
                      f"only (not on {', '.join(repr(n) for n in others if n != 'local')})", file=sys.stderr)
        return self._pool

    def _pool_states(self) -> list[tuple[str, str]]:
        """(name, what its line says when nothing runs there) for each runner of the pool: for the live
        display's thread, so one read of the pool, which the config may be setting meanwhile."""
        pool = self._pool
        return [(r.name, "quarantined" if r.quarantined else "idle" if r._seat.alive else "not connected")
                for r in pool or ()]

    @opt.checked("goal.put()")
    def put(self, local: str | os.PathLike[str], remote: str | os.PathLike[str]) -> dict[str, Transfer]:
        """Copy a local file or tree to every runner of the pool at once (a campaign's base files): runner
        name -> what was sent there. ``remote`` is resolved on each runner as ``runner.put()`` does."""
        pool = self._current_pool()
        source = _transfer.local_path(local, "goal.put()")
        target = _transfer.remote_text(remote, "goal.put()")
        try:
            done = self._engine.call_async(_transfer.put_everywhere, [r._seat for r in pool], source, target,
                                           self._engine.tell_transfer)
        except ParalluxError as exc:  # raised in the engine thread: its Trio frames mean nothing to a config
            raise exc.with_traceback(None) from None
        return {name: Runner._planned_or(transfer) for name, transfer in done.items()}

    @opt.checked("goal.runner_status()")
    def runner_status(self, runner: Runner | str | None = None) -> RunnerStatus | dict[str, RunnerStatus]:
        """The status of one runner, or a mapping name -> status for every runner in the pool."""
        if runner is not None:
            return self._runner_of(runner).status()
        return {r.name: r.status() for r in self._current_pool()}

    # -- settings -----------------------------------------------------------------------------------------------

    @opt.checked("goal.setParallel()")
    def setParallel(self, n: int | None) -> None:
        """At most ``n`` commands run at once across all runners (None: only the runners' own limits)."""
        self._engine.call(self._engine.set_parallel, opt.optional_int(n, "setParallel(n)"))

    @opt.checked("goal.setEnv()")
    def setEnv(self, key: str, value: str) -> None:
        """A variable for every command on every runner submitted from now on."""
        opt.env_pair(key, value, "setEnv()")
        self._env = {**self._env, key: value}  # a new dict: commands already registered keep theirs

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
        self._retries_default = opt.positive_int(n, "setRetries(n)", minimum=0)
        self._retry_on_default = opt.retry_on(retry_on, "setRetries(retry_on=)")

    @opt.checked("goal.setHalt()")
    def setHalt(self, mode: str, failures: int = 1) -> None:
        """What a failure does: "never" keep going; "soon" start nothing new once ``failures`` commands
        failed and let running ones finish; "now" also stop the running ones."""
        if mode not in HALT_MODES:
            raise ConfigError(f"setHalt() mode must be one of {', '.join(HALT_MODES)}, not {mode!r}")
        self._engine.call(self._engine.set_halt, mode, opt.positive_int(failures, "setHalt(failures=)"))

    # -- commands ----------------------------------------------------------------------------------------------

    def schd(self, command: str | list[str] = opt.MISSING, *extra: Any, **options: Any) -> Command:
        """Register a command; nothing starts until ``issue()`` (or the end of the config)."""
        if command is opt.MISSING or extra:  # not @opt.checked: schd() is called 100,000 times
            opt.refuse_positionals("goal.schd()", command, extra)
        handle = self._make_command(command, options, pin=None, where="goal.schd()")
        self._registered.append(handle)
        return handle

    @opt.checked("goal.issue()")
    def issue(self) -> Group:
        """Submit every command registered so far; returns their group handle."""
        group = Group(self._registered, self._engine.completion)
        self._registered = []
        return self._submit(group)

    def run(self, command: str | list[str] = opt.MISSING, *extra: Any, **options: Any) -> Command:
        """Submit one command now, without waiting; returns its handle."""
        if command is opt.MISSING or extra:  # not @opt.checked, as schd()
            opt.refuse_positionals("goal.run()", command, extra)
        handle = self._make_command(command, options, pin=None, where="goal.run()")
        self._submit(Group([handle], self._engine.completion))
        return handle

    def _run_pinned(self, runner: Runner, command: str | list[str], options: dict[str, Any]) -> Command:
        if "runner" in options:
            raise ConfigError(f"{runner.name}.run() is pinned to its runner; it takes no runner= option")
        handle = self._make_command(command, options, pin=self._runner_of(runner), where=f"{runner.name}.run()")
        self._submit(Group([handle], self._engine.completion))
        return handle

    def _submit(self, group: Group) -> Group:
        self._groups.append(group)
        find_completed([handle for handle in group.commands if handle.resume_check], self._read_records)
        if group.commands:
            self._engine.call(self._engine.submit, group)
        return group

    def _read_records(self, seat: Seat, work_dirs: list[str]) -> list[dict[str, Any] | None]:
        return self._engine.call_async(seat.records, work_dirs)

    def _make_command(self, command: Any, options: dict[str, Any], pin: Runner | None, where: str) -> Command:
        opt.check_option_names(options, opt.COMMAND_OPTIONS, where)
        text = opt.command_text(command)
        threads, cores = opt.threads_and_cores(options.get("threads", 1), options.get("cores"),
                                               "threads" in options)
        node = opt.numa_node(options.get("numa_node"))
        if options.get("runner") is not None:
            pin = self._runner_of(options["runner"])
            if pin not in self._current_pool():
                raise ConfigError(f"{where}: runner {pin.name!r} is not in the pool set by setRunner() "
                                  f"({[r.name for r in self._current_pool()]})")
        seq = next(self._seq)
        handle = Command(
            self._engine.completion, command=command, command_text=text, seq=seq,
            name=opt.name(options["name"], "name") if "name" in options else f"job{seq}",
            threads=threads, numa_node=node, requested_numa_node=node, requested_cores=cores,
            env=opt.environment(options.get("env"), "env"), cwd=opt.path(options.get("cwd"), "cwd"),
            check=opt.boolean(options.get("check", True), "check"),
            timeout=opt.seconds(options.get("timeout"), "timeout"),
            retries=opt.positive_int(options.get("retries", self._retries_default), "retries", minimum=0),
            pin=pin._seat if pin is not None else None, base_env=self._env,
            retry_on=opt.retry_on(options["retry_on"]) if "retry_on" in options else self._retry_on_default)
        if options.get("inputs") is not None:
            handle.inputs = self._fingerprints.of(opt.input_paths(options["inputs"]))
        handle.candidates = self._candidates(handle, pin, where)
        handle.work_relpath = self._work_relpath(options.get("work_relpath"), handle)
        handle.resume_check = self._resume and options.get("work_relpath") is not None
        return handle

    def _candidates(self, handle: Command, pin: Runner | None, where: str) -> tuple[Seat, ...]:
        """The seats that could ever run this command; none is a ConfigError explaining why for each."""
        pool = (pin,) if pin is not None else self._current_pool()
        fits, reasons = [], []
        for runner in pool:
            problem = _why_not(runner._seat, handle)
            if problem is None:
                fits.append(runner._seat)
            else:
                reasons.append(f"{runner.name}: {problem}")
        if not fits:
            raise ConfigError(f"{where}: command {handle.name!r} can never run: " + "; ".join(reasons))
        return tuple(fits)

    def _work_relpath(self, value: Any, handle: Command) -> str:
        if value is None:
            suffix = opt.safe_name(handle.name) if handle.name != f"job{handle.seq}" else ""
            return f"{self._run_id}/{handle.seq:05d}" + (f"_{suffix}" if suffix else "")
        relpath = opt.work_relpath(value)
        if relpath in self._relpaths:
            raise ConfigError(f"work_relpath {relpath!r} is already used by another command of this run; "
                              f"two commands would write the same files")
        self._relpaths.add(relpath)
        return relpath

    # -- the end of the config -------------------------------------------------------------------------------

    def _issue_leftovers(self) -> None:
        if self._registered:
            self.issue()

    def _all_commands(self) -> list[Command]:
        """Every command of the run: submitted, and registered but never issued."""
        return [c for g in self._groups for c in g.commands] + self._registered

    def _results(self) -> list[Result]:
        return [c.result for g in self._groups for c in g.commands if c.result is not None]


def _why_not(seat: Seat, handle: Command) -> str | None:
    if seat.allocator is None:
        if handle.requested_cores is not None:
            return "cores=[...] needs a runner with a core_pool"
        return None
    try:
        seat.allocator.check_request(handle.threads, handle.requested_numa_node, handle.requested_cores)
    except ConfigError as exc:
        return str(exc)
    return None


class GoalProxy:
    """``parallux.goal``: forwards to the running config's :class:`Goal`, or explains how to get one."""

    _current: Goal | None = None

    def __getattr__(self, name: str) -> Any:
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


goal = GoalProxy()  # what ``from parallux import goal`` gives
