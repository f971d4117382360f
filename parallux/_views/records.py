"""A run read back from its log: its commands, their attempts, how each ended (``reader`` builds them).

The records hold what the log says and nothing else; every view (``show``, ``compare``, ``export``, the
report) reads them, none writes them back.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Iterator

from .._errors import ParalluxError
from .._sizes import format_size


class HistoryError(ParalluxError):
    """A run asked for cannot be found or read (``parallux show RUN``): a usage error, exit 2."""


@dataclass(slots=True)
class Attempt:
    """One execution of a command: a bar on the timeline."""

    seq: int
    attempt: int
    runner: str | None
    host: str | None
    cores: list[int]
    numa_node: int | None
    work_dir: str | None
    start: float | None
    end: float | None = None
    status: str = "running"
    returncode: int | None = None
    user_seconds: float | None = None
    system_seconds: float | None = None
    max_rss_kb: int | None = None
    signal: int | None = None
    error: str | None = None
    stderr_tail: str | None = None
    metrics: dict[str, float] | None = None  # what metrics= and $PARALLUX_METRICS gave
    slot: int = 0  # the lane on the timeline, see assign_slots()
    memory_limit: int | None = None  # its memory= limit (bytes), which an "oom" exceeded
    gpus: list[int] = field(default_factory=list)  # the GPUs it leased

    @property
    def duration(self) -> float | None:
        return self.end - self.start if self.start is not None and self.end is not None else None

    def finish(self, record: dict[str, Any]) -> None:
        get = record.get
        if get("start") is not None:
            self.start = get("start")
        self.end = get("end")
        if self.end is None:  # ended without running (cancelled before the launcher started it)
            self.end = get("time")
        self.status = get("status") or "error"
        self.returncode = get("returncode")
        self.user_seconds = get("user_seconds")
        self.system_seconds = get("system_seconds")
        self.max_rss_kb = get("max_rss_kb")
        self.memory_limit = get("memory_limit")
        self.signal = get("signal")
        self.error = get("error")
        self.stderr_tail = get("stderr_tail")
        self.metrics = get("metrics")
        self.work_dir = get("work_dir") or self.work_dir
        self.host = get("host") or self.host
        self.gpus = get("gpus") or self.gpus


@dataclass(slots=True)
class CommandRecord:
    """One command of a run, as the log tells it: its submission, its attempts, how it ended."""

    seq: int
    name: str
    command: str | None = None
    work_relpath: str | None = None
    queued: float | None = None
    attempts: list[Attempt] = field(default_factory=list)
    status: str = "queued"               # queued, running, or the final status
    ended: Attempt | None = None          # how it ended: its last attempt, or the record of a command that
    #                                       did not run in this run (resumed, or cancelled while queued)
    finished_at: float | None = None      # the time of its finished event
    resumed: bool = False
    work_generated: bool | None = None    # parallux made its work_relpath up (None: a log from before that was said)
    bench: str | None = None              # an execution of a benchmark: the benchmark's key
    repetition: str | None = None         # and which: "w1" (a warm-up), "r3" (a measured repetition)
    after: list[dict[str, Any]] | None = None  # its after=: each dependency's seq and work_relpath

    @property
    def last(self) -> Attempt | None:
        """How it ended, or else its attempt now running (None: it has not started)."""
        if self.ended is not None:
            return self.ended
        return self.attempts[-1] if self.attempts else None

    @property
    def runner(self) -> str | None:
        last = self.last
        return last.runner if last is not None else None

    @property
    def duration(self) -> float | None:
        last = self.last
        return last.duration if last is not None else None

    @property
    def start(self) -> float | None:
        last = self.last
        return last.start if last is not None else None

    @property
    def end(self) -> float | None:
        last = self.last
        return last.end if last is not None else None

    @property
    def cpu_seconds(self) -> float | None:
        last = self.last
        if last is None or last.user_seconds is None and last.system_seconds is None:
            return None
        return (last.user_seconds or 0.0) + (last.system_seconds or 0.0)

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "running", "queued")

    @property
    def status_text(self) -> str:
        """Its status as the views name it: an ``oom`` with its limit (``oom (limit 64 MiB)``)."""
        last = self.last
        if self.status == "oom" and last is not None and last.memory_limit:
            return f"oom (limit {format_size(last.memory_limit)})"
        return self.status


@dataclass
class Run:
    """A run log read back."""

    path: str
    info: dict[str, Any]                      # run_started
    runners: dict[str, dict[str, Any]]        # name -> the runner event
    commands: list[CommandRecord]             # in submission order
    finished: dict[str, Any] | None           # run_finished, None while running or after a SIGKILL
    last_time: float | None                   # the last event's time
    skipped_lines: int = 0                    # lines that were not JSON (a torn write)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, why) of each record skipped
    other_runs: list[str] = field(default_factory=list)  # the ids of other runs in its file (an old log)
    benchmarks: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> its benchmark event
    orders: list[dict[str, Any]] = field(default_factory=list)  # the order events: the mode, the seed used
    machines: list[dict[str, Any]] = field(default_factory=list)  # machine, machine_load, probe, noise events
    # What is counted over every command (``scan.Scan.totals``) when ``commands`` holds only some of them
    # (``show --slowest``, read from a big run's log in two passes); None: counted over ``commands``.
    totals: dict[str, Any] | None = None

    @property
    def run_id(self) -> str:
        return str(self.info.get("run_id") or os.path.splitext(os.path.basename(self.path))[0])

    @property
    def start(self) -> float | None:
        return self.info.get("time")

    @property
    def state(self) -> str:
        return run_state(self.info, self.finished)

    @property
    def end(self) -> float | None:
        if self.finished is not None:
            return self.finished.get("time")
        return time.time() if self.state == "running" else self.last_time

    @property
    def elapsed(self) -> float | None:
        if self.finished is not None and self.finished.get("elapsed") is not None:
            return self.finished["elapsed"]
        return self.end - self.start if self.end is not None and self.start is not None else None

    def attempts(self) -> Iterator[Attempt]:
        for command in self.commands:
            yield from command.attempts

    def counts(self) -> dict[str, int]:
        if self.totals is not None:
            return dict(self.totals["counts"])
        return dict(Counter(map(attrgetter("status"), self.commands)))

    def hosts(self) -> list[str]:
        """Every machine of the run, once each (a Slurm runner's record names its nodes together: "n1,n2")."""
        hosts = {host for r in self.runners.values() for host in str(r.get("host") or "").split(",")}
        if self.totals is not None:
            hosts.update(self.totals["hosts"])
        for command in self.commands:
            hosts.update(map(attrgetter("host"), command.attempts))
        return sorted(h for h in hosts if h)

    def summary(self) -> dict[str, Any]:
        """The run as one JSON-able mapping (``show --format json``'s ``run``)."""
        finished = self.finished or {}
        return {"run_id": self.run_id, "config": self.info.get("config"), "argv": self.info.get("argv", []),
                "log": self.path, "state": self.state, "start": self.start, "end": self.end,
                "elapsed": self.elapsed, "commands": self._total("commands", len(self.commands)),
                "counts": self.counts(),
                "retries": self._total("retries", sum(max(0, len(c.attempts) - 1) for c in self.commands)),
                "resumed": self._total("resumed", sum(c.resumed for c in self.commands)),
                "exit_status": finished.get("exit_status"), "halted": finished.get("halted"),
                "host": self.info.get("host"), "pid": self.info.get("pid"), "parallux": self.info.get("parallux"),
                "python": self.info.get("python"), "hosts": self.hosts(),
                "order": [{"mode": o.get("mode"), "seed": o.get("seed")} for o in self.orders],
                "runners": [dict(r) for r in self.runners.values()]}


    def _total(self, name: str, counted: int) -> int:
        return self.totals[name] if self.totals is not None else counted


def run_state(info: dict[str, Any], finished: dict[str, Any] | None) -> str:
    """finished; running (its parallux is alive); or killed (no summary, and its process is gone)."""
    if finished is not None:
        return "finished"
    pid, host = info.get("pid"), info.get("host")
    if host == socket.gethostname() and isinstance(pid, int) and _alive(pid):
        return "running"
    return "killed" if host == socket.gethostname() else "unknown"


def _alive(pid: int) -> bool:
    if not 0 < pid < 1 << 22:  # no process has it (and os.kill would take <= 0 for a process group)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
