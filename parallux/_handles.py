"""Command handles, group handles and results: what a config holds while its commands run.

A handle is created in the main thread when a command is registered; the engine thread fills in its
assignment (runner, cores, work dir) when the scheduler places it and its result when it ends. Waiting happens
on one engine-wide ``threading.Condition`` instead of an event per command, so 100,000 handles stay cheap.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Iterator, Mapping, NamedTuple, Sequence

from . import _forks
from ._errors import ConfigError
from ._failures import command_error
from ._rare import Rare
from ._result import Result
from ._spec import FIELDS as SPEC_FIELDS
from ._spec import Spec, SpecField, spec_fields

__all__ = ["Command", "Completion", "Group", "Result", "Settled", "env_of", "failures_of"]


class Completion:
    """The one condition every waiter sleeps on, and what the waiters are waiting for.

    The engine wakes the waiters only when something they wait for (a command, a group, the end of all
    work) may have ended, not on every result: waking the main thread 2,000 times a second costs dispatch
    speed. No wake-up is lost: the engine stores a result before it looks at ``awaited``, and a waiter adds
    to ``awaited`` before it tests its predicate, so one of the two always sees the other.
    """

    IDLE = "idle"

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.awaited: Counter[Any] = Counter()  # a multiset: two threads may wait for the same handle
        self.broken: BaseException | None = None  # the engine's crash: waiting for it would be forever

    def wait_for(self, predicate: Any, timeout: float | None, target: Any) -> bool:
        if _forks.forked:  # the engine's thread stayed in the parent, and the lock it may have held is held here
            if predicate():
                return True
            _forks.refuse()
        with self.condition:
            self.awaited[target] += 1
            try:
                ended = self.condition.wait_for(lambda: predicate() or self.broken is not None, timeout)
            finally:
                self.awaited[target] -= 1
                if not self.awaited[target]:
                    del self.awaited[target]
        if self.broken is not None and not predicate():
            raise RuntimeError("the parallux engine stopped unexpectedly") from self.broken
        return ended

    def notify(self) -> None:
        with self.condition:
            self.condition.notify_all()

    def finished(self, command: Command, all_done: bool) -> None:
        """Called by the engine after it stored ``command``'s result."""
        awaited = self.awaited
        if not awaited:
            return
        group = command.group
        if (command in awaited or (group is not None and group.remaining == 0 and group in awaited)
                or (all_done and self.IDLE in awaited) or command.bench in awaited):
            self.notify()


class Command:
    """The handle of one command (``goal.run``, ``runner.run``, or one entry of ``goal.schd``).

    A million of them may be alive at once, so a handle holds little of its own: its options are its
    ``spec``'s (shared by the commands registered alike, ``_spec``), its default name is made when asked for,
    and once it ended its work dir is kept as its seat's workspace (``_settle``) and its result is compact."""

    __slots__ = ("command", "command_text", "_name", "seq", "work_relpath", "_work_dir", "_spec", "runner", "cores",
                 "host", "group", "result", "attempt", "bench", "repetition", "_rare")

    # its options that commands registered alike share: a SpecField each (``spec_fields``, below), and
    candidates = SpecField()  # the seats that could ever run it
    base_env = SpecField()  # goal.setEnv()'s variables when it was registered
    work_generated = SpecField()  # its work_relpath was made up by parallux (``parallux clean`` may remove it)
    resume_check = SpecField()  # --resume: look for an earlier run's record when submitted
    # what few commands have (in ``_rare``, a dict made for the command that has one)
    numa_node = Rare(None, "_rare")  # the NUMA node it was placed on
    gpus = Rare((), "_rare")  # the GPUs it leased
    inputs = Rare(None, "_rare")  # fingerprints of its inputs= (see _inputs)
    attempts = Rare(None, "_rare")  # the attempts that ended before its last one (it was retried)
    resumed_result = Rare(None, "_rare")  # --resume found it done: the earlier run's result
    inputs_changed = Rare(False, "_rare")  # --resume found a record of it, but its inputs changed since
    avoid = Rare(None, "_rare")  # the runner its last attempt could not be executed on: its retry prefers another
    after = Rare((), "_rare")  # its after=: the commands that must end ok before it starts
    dependents = Rare(None, "_rare")  # the engine's: commands waiting for this one to end

    def __init__(self, completion: Completion, spec: Spec | None = None, **fields: Any) -> None:
        options = {_SPEC_NAMES[name]: fields.pop(name) for name in list(fields) if name in _SPEC_NAMES}
        spec = spec or Spec(completion)
        self._spec = spec.but(**options) if options else spec
        self._name: str | None = None  # None: ``job<seq>``
        self._work_dir: str | Settled | None = None
        self.runner = None
        self.cores: tuple[int, ...] = ()
        self.result: Result | None = None
        self.attempt = 0
        self.group = None
        self._rare: dict[str, Any] | None = None
        self.host: str | None = None  # the machine it runs on (a Slurm runner's node), set with the runner
        self.bench = None       # an execution of a benchmark: its handle (``_benchmarks.Benchmark``) ...
        self.repetition = None  # ... and which execution it is: "w1" (a warm-up), "r3" (a measured repetition)
        for key, value in fields.items():
            setattr(self, key, value)

    @classmethod
    def _registered(cls, spec: Spec, command: Any, command_text: str, seq: int, name: str | None) -> Command:
        """A handle as registration makes it (``Registrar.make``: a million times in a campaign)."""
        handle = cls.__new__(cls)
        handle._spec, handle.command, handle.command_text, handle.seq, handle._name = \
            spec, command, command_text, seq, name
        handle._work_dir = handle.runner = handle.result = handle.group = handle._rare = handle.host = None
        handle.bench = handle.repetition = None
        handle.cores, handle.attempt = (), 0
        if spec.numa_node is not None:
            handle.numa_node = spec.numa_node
        return handle

    @property
    def name(self) -> str:
        return self._name if self._name is not None else f"job{self.seq}"

    @name.setter
    def name(self, value: str | None) -> None:
        self._name = value

    # -- assignment ------------------------------------------------------------------------------------------

    @property
    def work_dir(self) -> str | None:
        where = self._work_dir
        return f"{where.workspace}/{self.work_relpath}" if type(where) is Settled else where  # type: ignore[union-attr]

    @work_dir.setter
    def work_dir(self, value: str | None) -> None:
        self._work_dir = value

    def _settle(self, settled: Settled) -> None:
        """It ended on a seat whose workspace is ``settled``: its work dir is kept as that (shared by the seat's
        commands) when the workspace and its work_relpath give it back."""
        where = self._work_dir
        if type(where) is str and where == f"{settled.workspace}/{self.work_relpath}":
            self._work_dir = settled

    @property
    def runner_name(self) -> str | None:
        return self.runner.name if self.runner is not None else None

    @property
    def command_path(self) -> str | None:
        return _join(self.work_dir, "command.txt")

    @property
    def stdout_path(self) -> str | None:
        return _join(self.work_dir, "stdout.txt")

    @property
    def stderr_path(self) -> str | None:
        return _join(self.work_dir, "stderr.txt")

    @property
    def record_path(self) -> str | None:
        return _join(self.work_dir, "result.json")

    def assigned(self) -> bool:
        """True once the scheduler has placed the command on a runner."""
        return self.runner is not None

    def done(self) -> bool:
        return self.result is not None

    def sync(self, timeout: float | None = None) -> Result:
        """Wait for the command to end and return its result; raise if it failed under ``check=True``."""
        if self.group is None and self.result is None:
            raise ConfigError(f"command {self.name!r} was registered with schd() but never issued: call "
                              f"goal.issue() before waiting for it")
        if not self._spec.completion.wait_for(self.done, timeout, self):
            raise TimeoutError(f"command {self.name!r} still running after {timeout} s")
        result = self.result
        assert result is not None
        if self.check and not result.succeeded and result.status != "planned":
            raise command_error(failures_of(result))
        return result

    def __repr__(self) -> str:
        state = self.result.status if self.result else ("running" if self.runner else "queued")
        return f"<Command {self.name!r} {state} on {self.runner_name}>"


spec_fields(Command)
_SPEC_NAMES = {name: getattr(Command, name).name for name in dir(Command)
               if isinstance(getattr(Command, name), SpecField)}  # the handle's name -> the spec's
assert set(_SPEC_NAMES.values()) == set(SPEC_FIELDS)


class Settled(NamedTuple):
    """The work dir of a command that ended: its seat's workspace, the rest being its work_relpath (one per
    seat, so a finished command keeps no string of its own)."""

    workspace: str


class Group:
    """The handle ``goal.issue()`` returns: the commands submitted together, in submission order.

    ``commands`` is what the engine runs, in the order it is queued: a benchmark's executions stand there in
    place of it (see ``_benchmarks``). What a config iterates, indexes and gets from ``sync()`` is one handle
    per command it registered: ``handles``, the same list when the group holds no benchmark."""

    def __init__(self, commands: Sequence[Command], completion: Completion,
                 handles: Sequence[Any] | None = None) -> None:
        self.commands = list(commands)
        self.handles: list[Any] = self.commands if handles is None else list(handles)
        self._completion = completion
        self.remaining = len(self.commands)
        self._nursery: Any = None  # while its commands run: the engine's nursery of their tasks
        self._done: Any = None     # ... and what its task waits on: the ends of its commands (_engine._ends)

    def __iter__(self) -> Iterator[Command]:
        return iter(self.handles)

    def __len__(self) -> int:
        return len(self.handles)

    def __getitem__(self, index: int) -> Command:
        return self.handles[index]

    def done(self) -> bool:
        return self.remaining == 0

    def sync(self, timeout: float | None = None) -> list[Result]:
        """Wait for every command; raise one error listing every failed ``check=True`` command."""
        if not self._completion.wait_for(self.done, timeout, self):
            raise TimeoutError(f"{self.remaining} of {len(self.commands)} commands still running after {timeout} s")
        results = [c.result for c in self.handles]
        failed = [failure for c, r in zip(self.handles, results)
                  if c.check and r is not None and not r.succeeded and r.status != "planned"
                  for failure in failures_of(r)]
        if failed:
            raise command_error(failed)
        return results  # type: ignore[return-value]

    def results(self) -> list[Result | None]:
        """Results so far, without waiting and without raising."""
        return [c.result for c in self.handles]

    def __repr__(self) -> str:
        return f"<Group of {len(self.handles)} commands, {self.remaining} not finished>"


def failures_of(result: Result) -> list[Result]:
    """What a failed result is about: a benchmark's executions that did not end ok, or the result itself."""
    return [r for r in (*result.warmups, *result.repetitions) if not r.succeeded] or [result]


def _join(work_dir: str | None, name: str) -> str | None:
    return None if work_dir is None else work_dir.rstrip("/") + "/" + name


def env_of(*layers: Mapping[str, str] | None) -> dict[str, str]:
    merged: dict[str, str] = {}
    for layer in layers:
        if layer:
            merged.update(layer)
    return merged

