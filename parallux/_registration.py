"""Registering commands: ``schd()``, ``run()`` and ``runner.run()`` options made into command handles.

Pure main-thread bookkeeping, so registering 100,000 commands costs no thread crossings; everything a config
can get wrong is refused here, at the call, before anything starts.
"""

from __future__ import annotations

import itertools
from typing import Any

from . import _options as opt
from ._after import dependencies_of
from ._benchmarks import Benchmark
from ._command_options import COMMAND, SHARED
from ._engine._seat import Seat
from ._errors import ConfigError
from ._handles import Command, Completion
from ._inputs import Fingerprints
from ._nul import refuse_nuls
from ._pool import Pool
from ._resources import request_of
from ._runner import Runner
from ._spec import Spec, Specs


PLAIN_KEPT = 256  # shapes of plain registrations remembered (see Registrar._shape)


class Registrar:
    """Makes command handles; keeps what a run's commands share: sequence numbers, the work paths taken,
    the defaults ``setEnv``/``setRetries`` set, input fingerprints."""

    def __init__(self, pool: Pool, completion: Completion, run_id: str, resume: bool, retries: int,
                 dry_run: bool = False) -> None:
        self._pool = pool
        self._dry_run = dry_run
        self._completion = completion
        self._run_id = run_id
        self._resume = resume
        self._defaults = {"retries": retries, "retry_on": None}  # setRetries()'s, for commands registered after
        self.env: dict[str, str] = {}
        self._relpaths: set[str] = set()
        self._seq = itertools.count(1)
        self._fingerprints = Fingerprints()
        self._specs = Specs()  # the options of commands registered alike, kept once
        self._plain: dict[tuple[Any, ...], Spec] = {}  # see _shape
        self.measuring = False  # a benchmark or metrics= was registered: the run measures (noise checks)

    def make(self, command: Any, options: dict[str, Any], pin: Runner | None, where: str) -> Command | Benchmark:
        """A command handle from ``schd()``'s (or ``run()``'s) arguments, checked; a benchmark's handle for
        ``repeat=`` > 1 or ``warmup=`` > 0."""
        refuse_nuls((("command", command), *options.items()), where)  # (not a checked call: see _options)
        text = opt.command_text(command)
        values = COMMAND.checked(options, where, self._defaults)
        if values["runner"] is not None:
            pin = self._pool.runner_of(values["runner"])
            if pin not in self._pool.current():
                raise ConfigError(f"{where}: runner {pin.name!r} is not in the pool set by setRunner() "
                                  f"({[r.name for r in self._pool.current()]})")
        values["runner"] = pin._seats[0] if pin is not None else None
        relpath = values["work_relpath"]
        shape = self._shape(values, relpath)
        known = self._plain.get(shape) if shape is not None else None
        spec = known or Spec.made(self._completion, values, base_env=self.env, work_generated=relpath is None,
                                  resume_check=self._resume and relpath is not None)
        self.measuring = self.measuring or spec.metrics is not None
        handle = Command._registered(spec, command, text, next(self._seq), values["name"])  # (name None: job<seq>)
        if values["after"] is not None:
            handle.after = dependencies_of(values["after"], self._completion, handle.name, where)
        if values["inputs"] is not None:
            paths = opt.input_paths(values["inputs"], must_exist=not self._dry_run)
            handle.inputs = self._fingerprints.of(paths, missing_ok=self._dry_run)
        if known is None:
            spec.candidates = self._candidates(handle, pin, where)  # (the spec is this handle's alone until shared)
            handle._spec = self._specs.shared(spec)
            if shape is not None and _plain(handle._spec):
                self._plain[shape] = handle._spec
        handle.work_relpath = self._work_relpath(relpath, handle)
        if values["repeat"] > 1 or values["warmup"] > 0:
            self.measuring = True
            return self._benchmark(handle, values["warmup"], values["repeat"])
        return handle

    def _benchmark(self, template: Command, warmup: int, repeat: int) -> Benchmark:
        bench = Benchmark(template, warmup, repeat, self._completion)
        if not template.work_generated:  # (a generated key is new: nothing else can be below it)
            for execution in bench.executions:
                self._take(execution.work_relpath)
        return bench

    @property
    def retries(self) -> int:
        return self._defaults["retries"]  # type: ignore[no-any-return]

    def set_retries(self, retries: int, retry_on: frozenset[str | int] | None) -> None:
        """``setRetries()``: the defaults of commands registered from now on (a new dict: made ones keep theirs)."""
        self._defaults = {"retries": retries, "retry_on": retry_on}

    def next_seq(self) -> int:
        """A sequence number: a benchmark's executions get theirs when issued, in the order they are queued
        (the scheduler starts commands of different kinds oldest sequence number first)."""
        return next(self._seq)

    def _shape(self, values: dict[str, Any], relpath: str | None) -> tuple[Any, ...] | None:
        """What makes the specs of two registrations equal (their options, the goal's variables, the pool), or
        None when it cannot be told by a key. A spec registered before with the same shape is the one a new
        registration would make and share -- when it is ``_plain``: its runners are then the whole pool,
        whatever the runners' launchers have said since -- so a campaign's millionth command reuses it."""
        if len(self._plain) >= PLAIN_KEPT:
            self._plain.clear()
        shape = (self._pool.current(), id(self.env), relpath is None, *map(values.__getitem__, SHARED))
        try:
            hash(shape)
        except TypeError:  # (a mapping or list among the options: a command's env=, metrics=)
            return None
        return shape

    def _candidates(self, handle: Command, pin: Runner | None, where: str) -> tuple[Seat, ...]:
        """The seats that could ever run this command; none is a ConfigError explaining why for each."""
        pool = (pin,) if pin is not None else self._pool.current()
        fits, reasons = [], []
        for runner in pool:
            problem = _why_not(runner._seat, handle)
            if problem is None:
                fits.extend(runner._seats)
            else:
                reasons.append(f"{runner.name}: {problem}")
        if not fits:
            raise ConfigError(f"{where}: command {handle.name!r} can never run: " + "; ".join(reasons))
        return tuple(fits)

    def _work_relpath(self, value: Any, handle: Command) -> str:
        if value is None:
            suffix = opt.safe_name(handle.name) if handle.name != f"job{handle.seq}" else ""
            return f"{self._run_id}/{handle.seq:05d}" + (f"_{suffix}" if suffix else "")
        return self._take(opt.work_relpath(value))

    def _take(self, relpath: str) -> str:
        if relpath in self._relpaths:
            raise ConfigError(f"work_relpath {relpath!r} is already used by another command of this run; "
                              f"two commands would write the same files")
        self._relpaths.add(relpath)
        return relpath


def _plain(spec: Spec) -> bool:
    """Whether no runner of its pool could refuse it for what their launchers say (``_why_not``): it asks for
    no resource, and has no timeout an allocation's time limit could cut."""
    return (spec.memory is None and spec.gpus is None and spec.cores is None and spec.numa_node is None
            and all(seat.allocator is None and (not spec.timeout or seat.view.time_limit is None)
                    for seat in spec.candidates))


def _why_not(seat: Seat, handle: Command) -> str | None:
    if handle.memory is not None and (why := _no_memory_limit(seat)) is not None:
        return why
    longest = seat.view.time_limit
    if handle.timeout and longest is not None and handle.timeout > longest - min(60.0, longest / 10):
        return (f"its timeout ({handle.timeout:g} s) is longer than the allocation's time limit "
                f"({longest:g} s) allows, less a margin for the launchers to start: raise time= or lower "
                f"the timeout")
    if seat.allocator is None:
        if handle.requested_cores is not None:
            return "cores=[...] needs a runner with a core_pool"
        if handle.requested_numa_node is not None:  # unpinned there, it would measure something else
            return (f"numa_node={handle.requested_numa_node} needs a runner with numa_nodes declared, and this "
                    f"one has no core pool")
        if handle.requested_gpus is None and handle.memory is None:
            return None
    try:  # (against what its launcher's hello said the machine offers; an offer not known yet is not refused)
        seat.resources.check(request_of(handle))
    except ConfigError as exc:
        return str(exc)
    return None


def _no_memory_limit(seat: Seat) -> str | None:
    """Why a runner cannot limit a command's memory (its launcher's hello says what its cgroups can do);
    None where it can, or where no launcher has said yet (a dry run's, a pending allocation's: the launcher
    itself then refuses it)."""
    cgroups = seat.view.facts.get("cgroups")
    if cgroups is None or cgroups.get("memory_limit"):
        return None
    why = cgroups.get("why_not") or "its launcher cannot give a command a cgroup of its own"
    return f"memory= needs a cgroup of its own per command, with the memory controller, and {why}"
