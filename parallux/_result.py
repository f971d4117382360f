"""A command's result, kept compact: a campaign of a million commands keeps a million of them.

A result holds what is its own -- its status, exit status, run id, and its five figures (start, end, CPU
seconds, peak RSS) packed in 40 bytes -- and reads the rest from its handle: name, runner, work dir, cores
are the handle's, which no longer change once its last attempt ended. The fields most results lack (an error,
a signal, a stderr tail, metrics, a benchmark's repetitions and statistics) live in one ``_more`` dict, made
only for a result that has one. A result of an attempt that is retried is ``detach``-ed first: it takes its
own copy of the handle's fields, since the retry moves the handle on.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from typing import Any

from ._command_options import COMMAND
from ._errors import ConfigError
from ._rare import Rare
from ._status import Status

_FIGURES = struct.Struct("<4dq")  # start, end, user and system seconds (NaN: unknown); peak RSS kB (-1: unknown)
_UNKNOWN = _FIGURES.pack(math.nan, math.nan, math.nan, math.nan, -1)
_FIGURE_NAMES = ("start_time", "end_time", "user_seconds", "system_seconds", "max_rss_kb")
# read from the handle, unless the result holds its own (a detached one, a resumed one): what it ran, where,
# and its options flagged ``result`` (``_command_options``: its name, work_relpath, check, timeout, memory=)
_HANDLE_FIELDS = ("command", "command_text", "runner", "runner_name", "host", "work_dir", "cores", "numa_node",
                  "gpus", "attempt", "repetition", *(option.field for option in COMMAND.flagged("result")))
_RARE = {"error": None, "signal": None, "stderr_tail_text": None, "_kind": None, "resumed": False}
_RARE_OUTCOME = tuple((name, name.lstrip("_"), default) for name, default in _RARE.items())  # (the outcome's
# key for each: made once, not per result)
_EXIT_RARE = (("signal", "signal"), ("error", "error"), ("stderr_tail", "stderr_tail_text"), ("reason", "_kind"))
_STATUSES = {status.value: status for status in Status}
_EMPTY = {"metrics": dict, "repetitions": list, "warmups": list, "stats": dict}  # (an empty one when absent)


class _Figure:
    """One of the packed figures (or the result's own, when the five could not be packed)."""

    __slots__ = ("name", "index")

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.index = name, _FIGURE_NAMES.index(name)

    def __get__(self, result: Result | None, owner: type | None = None) -> Any:
        if result is None:
            return self
        more = result._more
        if more is not None and self.name in more:
            return more[self.name]
        return _figure(_FIGURES.unpack(result._figures)[self.index])

    def __set__(self, result: Result, value: Any) -> None:
        figures = list(result._figure_values())
        figures[self.index] = value
        result._set_figures(figures)


class _Shared:
    """A field read from the handle, unless the result holds its own."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, result: Result | None, owner: type | None = None) -> Any:
        if result is None:
            return self
        more = result._more
        if more is not None and self.name in more:
            return more[self.name]
        return getattr(result._handle, self.name)

    def __set__(self, result: Result, value: Any) -> None:
        result._own(self.name, value)


class Result:
    """How a command ended. It has the handle's fields plus the outcome and resource figures."""

    __slots__ = ("_handle", "status", "returncode", "run_id", "_figures", "_more")

    # the _HANDLE_FIELDS, each a _Shared (set below); repetition: "w1", "r3" of a benchmark; memory: its limit
    start_time, end_time = _Figure(), _Figure()
    user_seconds, system_seconds, max_rss_kb = _Figure(), _Figure(), _Figure()
    error, signal, stderr_tail_text, resumed = Rare(None), Rare(None), Rare(None), Rare(False)
    _kind = Rare(None)  # why an "error": "locked" (another run's work dir), "lost", ...
    metrics = Rare(dict)  # name -> value (metrics=, its file)
    # A benchmark's Result (``_benchmarks``): its executions' results, and measure -> Stats over the
    # repetitions that ended ok. A plain command has none of them.
    repetitions, warmups, stats = Rare(list), Rare(list), Rare(dict)

    def __init__(self, handle: Any, status: str, **outcome: Any) -> None:
        self._handle = handle
        self._more: dict[str, Any] | None = None
        self.status = status
        self.returncode: int | None = outcome.get("returncode")
        self.run_id: str | None = outcome.get("run_id")  # the run that produced it (set when it is final)
        get = outcome.get
        self._set_figures((get("start_time"), get("end_time"), get("user_seconds"), get("system_seconds"),
                           get("max_rss_kb")))
        for name, key, default in _RARE_OUTCOME:
            value = get(key)
            if value is not None and value != default:
                self._own(name, value)
        if outcome.get("metrics"):
            self._own("metrics", outcome["metrics"])
        if outcome.get("attempts") is not None:  # (else: the handle's earlier attempts, and this one)
            self._own("attempts", outcome["attempts"])

    @classmethod
    def _of_exit(cls, handle: Any, event: dict[str, Any]) -> Result:
        """A launcher's ``exit`` event as a result: ``Result(handle, **outcome_of(event))`` made directly (one
        per command, on the engine's loop)."""
        result = cls.__new__(cls)
        result._handle, result._more, result.run_id = handle, None, None
        result.status = _STATUSES.get(event["status"]) or Status(event["status"])
        result.returncode = event["returncode"]
        get = event.get
        result._set_figures((event["start"], event["end"], get("user_seconds"), get("system_seconds"),
                             get("max_rss_kb")))
        for key, name in _EXIT_RARE:
            if (value := get(key)) is not None:
                result._own(name, value)
        if metrics := get("metrics"):
            result._own("metrics", metrics)
        return result

    def _own(self, name: str, value: Any) -> None:
        if self._more is None:
            self._more = {}
        self._more[name] = value

    def _set_figures(self, figures: list[Any] | tuple[Any, ...]) -> None:
        try:
            self._figures = _pack(*figures)
        except (struct.error, TypeError):  # (not numbers: a record from elsewhere) kept as they are
            self._figures = _UNKNOWN
            for name, value in zip(_FIGURE_NAMES, figures):
                self._own(name, value)
            return
        if self._more is not None:
            for name in _FIGURE_NAMES:
                self._more.pop(name, None)

    def _detach(self) -> None:
        """Take a copy of every field read from the handle, which is about to move on (a retry)."""
        self._own("attempts", self.attempts)
        for name in _HANDLE_FIELDS:
            self._own(name, getattr(self, name))

    @property
    def duration(self) -> float | None:
        start, end = self._figure_values()[:2]
        return None if start is None or end is None else end - start

    @property
    def attempts(self) -> list[dict[str, Any]]:
        """One entry per attempt that ended: the handle's earlier ones and this one, unless set."""
        more = self._more
        if more is not None and "attempts" in more:
            return more["attempts"]
        return [*(getattr(self._handle, "attempts", None) or ()), self.attempt_entry()]

    @attempts.setter
    def attempts(self, value: list[dict[str, Any]]) -> None:
        self._own("attempts", value)

    def _figure_values(self) -> tuple[Any, ...]:
        """(start_time, end_time, user_seconds, system_seconds, max_rss_kb) at once."""
        more = self._more
        if more is not None and "start_time" in more:
            return tuple(more[name] for name in _FIGURE_NAMES)
        start, end, user, system, rss = _FIGURES.unpack(self._figures)  # (NaN, the one value unequal to itself:
        return (None if start != start else start, None if end != end else end,  # unknown)
                None if user != user else user, None if system != system else system, None if rss < 0 else rss)

    command_path = property(lambda self: _join(self.work_dir, "command.txt"))
    stdout_path = property(lambda self: _join(self.work_dir, "stdout.txt"))
    stderr_path = property(lambda self: _join(self.work_dir, "stderr.txt"))
    record_path = property(lambda self: _join(self.work_dir, "result.json"))

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
        fields = {k: getattr(self, k) for k in FIELDS}
        fields["cores"] = list(self.cores)
        fields["gpus"] = list(self.gpus)
        fields["repetitions"] = [r.as_dict() for r in self.repetitions]
        fields["warmups"] = [r.as_dict() for r in self.warmups]
        fields["stats"] = {measure: stats.as_dict() for measure, stats in self.stats.items()}
        if not isinstance(fields["command"], str):
            fields["command"] = list(fields["command"])
        return fields

    def __repr__(self) -> str:
        return f"<Result {self.name!r} {self.status} rc={self.returncode} on {self.runner_name}>"


for _field in _HANDLE_FIELDS:
    setattr(Result, _field, _Shared(_field))


# what as_dict() gives: every field but the runner object and the kind of error
FIELDS = ("command", "command_text", "name", "runner_name", "work_relpath", "work_dir", "cores", "numa_node", "gpus",
          "returncode", "status", "start_time", "end_time", "duration", "error", "signal", "attempt", "timeout",
          "memory", "user_seconds", "system_seconds", "max_rss_kb", "resumed", "check", "run_id", "attempts",
          "stderr_tail_text", "host", "metrics", "repetition", "repetitions", "warmups", "stats")


def _pack(start: Any, end: Any, user: Any, system: Any, rss: Any) -> bytes:
    if start is None and end is None and user is None and system is None and rss is None:
        return _UNKNOWN
    return _FIGURES.pack(math.nan if start is None else start, math.nan if end is None else end,
                         math.nan if user is None else user, math.nan if system is None else system,
                         -1 if rss is None else rss)


def figures(result: Result) -> tuple[Any, ...]:
    """(start_time, end_time, user_seconds, system_seconds, max_rss_kb) of a result, read at once (the run
    log's record of every command reads them all)."""
    return result._figure_values()


def _figure(value: float | int) -> Any:
    if type(value) is float:
        return None if math.isnan(value) else value
    return None if value < 0 else value


def _join(work_dir: str | None, name: str) -> str | None:
    return None if work_dir is None else work_dir.rstrip("/") + "/" + name
