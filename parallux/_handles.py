"""Command handles, group handles and results: what a config holds while its commands run.

A handle is created in the main thread when a command is registered; the engine thread fills in its
assignment (runner, cores, work dir) when the scheduler places it and its result when it ends. Waiting happens
on one engine-wide ``threading.Condition`` instead of an event per command, so 100,000 handles stay cheap.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any, Iterator, Mapping, Sequence

from . import _forks
from ._errors import ConfigError
from ._failures import command_error



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
    """The handle of one command (``goal.run``, ``runner.run``, or one entry of ``goal.schd``)."""

    __slots__ = ("command", "command_text", "name", "threads", "numa_node", "requested_numa_node",
                 "requested_cores", "env", "cwd",
                 "work_relpath", "check", "timeout", "memory", "retries", "pin", "candidates", "seq", "base_env",
                 "runner", "cores", "work_dir", "result", "attempt", "group", "_completion", "resumed_result",
                 "resume_check", "retry_on", "inputs", "attempts", "inputs_changed", "avoid", "host", "work_generated",
                 "metrics", "bench", "repetition", "after", "dependents", "__weakref__")

    def __init__(self, completion: Completion, **fields: Any) -> None:
        self._completion = completion
        self.runner = None
        self.cores: tuple[int, ...] = ()
        self.work_dir: str | None = None
        self.result: Result | None = None
        self.attempt = 0
        self.group = None
        self.resumed_result = None
        self.resume_check = False  # --resume: look for an earlier run's record when submitted
        self.numa_node = None
        self.requested_numa_node = None
        self.retry_on: frozenset[str | int] | None = None  # None: retry failed, timeout, oom and error
        self.memory: int | None = None  # its memory= limit in bytes
        self.inputs: dict[str, Any] | None = None  # fingerprints of its inputs= (see _inputs)
        self.attempts: list[dict[str, Any]] = []    # one entry per attempt that ended, in order
        self.inputs_changed = False  # --resume found a record of it, but its inputs changed since
        self.avoid = None  # the runner its last attempt could not be executed on: its retry prefers another
        self.host: str | None = None  # the machine it runs on (a Slurm runner's node), set with the runner
        self.work_generated = False  # its work_relpath was made up by parallux (``parallux clean`` may remove it)
        self.metrics: dict[str, str | None] | None = None  # its metrics=: name -> pattern (None: from its file)
        self.bench = None       # an execution of a benchmark: its handle (``_benchmarks.Benchmark``) ...
        self.repetition = None  # ... and which execution it is: "w1" (a warm-up), "r3" (a measured repetition)
        self.after: tuple[Command, ...] = ()  # its after=: the commands that must end ok before it starts
        self.dependents: list[Command] | None = None  # the engine's: commands waiting for this one to end
        for key, value in fields.items():
            setattr(self, key, value)

    # -- assignment ------------------------------------------------------------------------------------------

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
        if not self._completion.wait_for(self.done, timeout, self):
            raise TimeoutError(f"command {self.name!r} still running after {timeout} s")
        result = self.result
        assert result is not None
        if self.check and not result.succeeded and result.status != "planned":
            raise command_error(failures_of(result))
        return result

    def __repr__(self) -> str:
        state = self.result.status if self.result else ("running" if self.runner else "queued")
        return f"<Command {self.name!r} {state} on {self.runner_name}>"


class Result:
    """How a command ended. It has the handle's fields plus the outcome and resource figures."""

    __slots__ = ("command", "command_text", "name", "runner", "runner_name", "work_relpath", "work_dir",
                 "cores", "numa_node", "returncode", "status", "start_time", "end_time", "duration", "error",
                 "signal", "attempt", "timeout", "memory", "user_seconds", "system_seconds", "max_rss_kb", "resumed",
                 "check", "run_id", "attempts", "stderr_tail_text", "host", "metrics", "repetition", "repetitions",
                 "warmups", "stats", "_kind")

    def __init__(self, handle: Command, status: str, **outcome: Any) -> None:
        self.command = handle.command
        self.command_text = handle.command_text
        self.name = handle.name
        self.runner = handle.runner
        self.runner_name = handle.runner_name
        self.host = handle.host
        self.work_relpath = handle.work_relpath
        self.work_dir = handle.work_dir
        self.cores = handle.cores
        self.numa_node = handle.numa_node
        self.timeout = handle.timeout
        self.memory = handle.memory  # its memory= limit (bytes), which an "oom" exceeded
        self.check = handle.check
        self.attempt = handle.attempt
        self.status = status
        for key in ("returncode", "start_time", "end_time", "error", "signal", "user_seconds",
                    "system_seconds", "max_rss_kb", "stderr_tail_text"):
            setattr(self, key, outcome.get(key))
        self.resumed = bool(outcome.get("resumed", False))
        self.run_id: str | None = outcome.get("run_id")  # the run that produced it (set when it is final)
        self.attempts: list[dict[str, Any]] = outcome.get("attempts") or []
        self._kind: str | None = outcome.get("kind")  # why an "error": "locked" (another run's work dir)
        self.metrics: dict[str, float] = outcome.get("metrics") or {}  # name -> value (metrics=, its file)
        self.duration = (self.end_time - self.start_time
                         if self.start_time is not None and self.end_time is not None else None)
        self.repetition: str | None = handle.repetition  # an execution of a benchmark: "w1", "r3"
        # A benchmark's Result (``_benchmarks``): its executions' results, and measure -> Stats over the
        # repetitions that ended ok. A plain command has none of them.
        self.repetitions: list[Result] = []
        self.warmups: list[Result] = []
        self.stats: dict[str, Any] = {}

    command_path = Command.command_path
    stdout_path = Command.stdout_path
    stderr_path = Command.stderr_path
    record_path = Command.record_path

    @property
    def succeeded(self) -> bool:
        return self.status == "ok"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def read_stdout(self, errors: str = "replace") -> str:
        """The command's stdout, read by its runner's launcher (wherever the runner is)."""
        return self._read(self.stdout_path, errors)

    def read_stderr(self, errors: str = "replace") -> str:
        return self._read(self.stderr_path, errors)

    def read_file(self, name: str, errors: str = "replace") -> str:
        """A file of the command's work dir (``name`` relative to it), as text."""
        if not isinstance(name, str) or not name or name.startswith("/") or ".." in name.split("/"):
            raise ConfigError(f"read_file(): name must be a path inside the work dir (relative, without "
                              f"'..'), not {name!r}")
        return self._read(_join(self.work_dir, name), errors)

    def _read(self, path: str | None, errors: str) -> str:
        if self.repetitions or self.warmups:
            raise ConfigError(f"{self.name!r} is a benchmark: each of its executions has its own files; read "
                              f"them from result.repetitions[i] (or result.warmups[i])")
        if path is None or self.runner is None or self.status == "planned":
            return ""  # a dry run's planned command wrote nothing
        return self.runner._read_file_on(self.host, path).decode("utf-8", errors)

    def stderr_tail(self, lines: int = 5) -> list[str]:
        """The last lines of stderr of a command that did not succeed, as its launcher sent them with its exit
        (so a report never waits for a runner, nor fails because one went away); [] otherwise."""
        if not self.stderr_tail_text:
            return []
        return list(deque(self.stderr_tail_text.splitlines(), maxlen=lines))

    def attempt_entry(self) -> dict[str, Any]:
        """This attempt as one entry of ``attempts``."""
        entry = {"runner": self.runner_name, "status": self.status, "returncode": self.returncode,
                 "start": self.start_time, "end": self.end_time}
        if self.host is not None:
            entry["host"] = self.host
        return entry

    def as_dict(self) -> dict[str, Any]:
        fields = {k: getattr(self, k) for k in self.__slots__ if k not in ("runner", "_kind")}
        fields["cores"] = list(self.cores)
        fields["repetitions"] = [r.as_dict() for r in self.repetitions]
        fields["warmups"] = [r.as_dict() for r in self.warmups]
        fields["stats"] = {measure: stats.as_dict() for measure, stats in self.stats.items()}
        if not isinstance(fields["command"], str):
            fields["command"] = list(fields["command"])
        return fields

    def __repr__(self) -> str:
        return f"<Result {self.name!r} {self.status} rc={self.returncode} on {self.runner_name}>"


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
        self._done: Any = None     # ... and the event set when the last of them finished

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

