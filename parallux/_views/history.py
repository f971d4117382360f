"""Reading runs back: the history of runs per config, and one run's log turned into commands and attempts.

Everything here reads files only, so it works on a run that is still going (its log is flushed every 50 ms;
the last line may be half written) and on a run that was killed (no ``run_finished``). The layout of the
history is described in ``_runlog``; the views (``show``, ``report``, ``export``, ``compare``) are built on
:func:`load_run`, which costs one ``json.loads`` per event: about a second for a 100,000-command run.
"""

from __future__ import annotations

import gc
import heapq
import json
import math
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Iterator

from . import jsonl
from .._errors import ParalluxError
from .._statedir import LATEST, config_dir, default_log_dir

TAIL_BYTES = 64 * 1024
STDERR_TAIL_BYTES = 4096


class HistoryError(ParalluxError):
    """A run asked for cannot be found or read (``parallux show RUN``): a usage error, exit 2."""


# -- one run, in full -------------------------------------------------------------------------------------


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
    slot: int = 0  # the lane on the timeline, see assign_slots()

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
        self.signal = get("signal")
        self.error = get("error")
        self.stderr_tail = get("stderr_tail")
        self.work_dir = get("work_dir") or self.work_dir
        self.host = get("host") or self.host


def _ended_attempt(record: dict[str, Any], number: int) -> Attempt:
    """An attempt from its retrying/finished event alone: that repeats the started event's fields."""
    get = record.get
    end = get("end")
    return Attempt(get("seq"), get("attempt", number), get("runner"), get("host"), get("cores") or [],  # type: ignore[arg-type]
                   get("numa_node"), get("work_dir"), get("start"), end if end is not None else get("time"),
                   get("status") or "error", get("returncode"), get("user_seconds"), get("system_seconds"),
                   get("max_rss_kb"), get("signal"), get("error"), get("stderr_tail"))


def _attempt_from(record: dict[str, Any], start: float | None, number: int) -> Attempt:
    """An attempt from its started event (still running), or from its retrying/finished event alone: those
    repeat the started event's fields."""
    get = record.get
    return Attempt(get("seq"), get("attempt", number), get("runner"), get("host"), get("cores") or [],  # type: ignore[arg-type]
                   get("numa_node"), get("work_dir"), start)


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
        return dict(Counter(map(attrgetter("status"), self.commands)))

    def hosts(self) -> list[str]:
        hosts = {r.get("host") for r in self.runners.values()}
        for command in self.commands:
            hosts.update(map(attrgetter("host"), command.attempts))
        return sorted(h for h in hosts if h)

    def summary(self) -> dict[str, Any]:
        """The run as one JSON-able mapping (``show --format json``'s ``run``)."""
        finished = self.finished or {}
        return {"run_id": self.run_id, "config": self.info.get("config"), "argv": self.info.get("argv", []),
                "log": self.path, "state": self.state, "start": self.start, "end": self.end,
                "elapsed": self.elapsed, "commands": len(self.commands), "counts": self.counts(),
                "retries": sum(max(0, len(c.attempts) - 1) for c in self.commands),
                "resumed": sum(c.resumed for c in self.commands),
                "exit_status": finished.get("exit_status"), "halted": finished.get("halted"),
                "host": self.info.get("host"), "pid": self.info.get("pid"), "parallux": self.info.get("parallux"),
                "python": self.info.get("python"), "hosts": self.hosts(),
                "runners": [dict(r) for r in self.runners.values()]}


def load_run(path: str) -> Run:
    """Read a run log. A half-written last line (the run is going) and torn lines are skipped."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise HistoryError(f"cannot read the run log {path}: {exc.strerror}") from exc
    builder = _RunBuilder(path)
    # Hundreds of thousands of small dicts and no cycles among them: the cyclic collector would walk them
    # again and again as they pile up (a third of the time for 100,000 commands), for nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        builder.read(jsonl.split_lines(data))
        return builder.build()
    finally:
        if collecting:
            gc.enable()


_STARTED = '{"event":"started",'


class _RunBuilder:
    def __init__(self, path: str) -> None:
        self.path = path
        self.info: dict[str, Any] = {}
        self.runners: dict[str, dict[str, Any]] = {}
        self.commands: dict[int, CommandRecord] = {}
        self.finished: dict[str, Any] | None = None
        self.last_time: float | None = None
        self.skipped = 0
        # A started event is read only if no retrying/finished event follows it (the attempt still runs):
        # those repeat its fields. Skipping it saves a third of the parsing. seq -> the line.
        self.pending_starts: dict[int, Any] = {}
        self.handlers = {"run_started": self._on_run_started, "runner": self._on_runner,
                         "run_finished": self._on_run_finished, "queued": self._on_queued,
                         "started": self._on_started, "retrying": self._on_retrying,
                         "finished": self._on_finished}

    def read(self, lines: list[Any]) -> None:
        """Every event, in order. The hot path (queued and finished: two thirds of the lines) is inlined:
        100,000 commands are 300,000 lines, and each Python call per line costs tens of milliseconds."""
        decode, pending, handlers, commands = jsonl.loads, self.pending_starts, self.handlers, self.commands
        started = jsonl.prefix(_STARTED, lines[0] if lines else "")
        for line in lines:
            if not line:
                continue
            if line.startswith(started):
                seq = _seq_of(line)
                if seq is not None:
                    pending[seq] = line
                    continue
            try:
                record = decode(line)
                event = record["event"]
            except (ValueError, KeyError, TypeError):
                self.skipped += 1
                continue
            if event == "finished":
                seq = record.get("seq")
                command = commands.get(seq)  # type: ignore[arg-type]
                if command is not None and not command.attempts and not record.get("resumed") \
                        and record.get("start") is not None:
                    command.ended = attempt = _ended_attempt(record, 0)
                    command.attempts.append(attempt)
                    command.finished_at = record["time"]
                    command.status = attempt.status
                    if seq in pending:
                        del pending[seq]
                    continue
            elif event == "queued":
                seq = record.get("seq")
                if seq not in commands:
                    get = record.get
                    commands[seq] = CommandRecord(seq, get("name", ""), get("command"), get("work_relpath"),  # type: ignore[index]
                                                  get("time"))
                    continue
            handler = handlers.get(event)
            if handler is not None:
                handler(record)
        self.last_time = _last_time(lines)

    def _parse(self, line: Any) -> dict[str, Any] | None:
        try:
            record = jsonl.loads(line)
            if not isinstance(record, dict) or "event" not in record:
                raise ValueError(line)
        except ValueError:
            self.skipped += 1
            return None
        return record

    def _command(self, record: dict[str, Any]) -> CommandRecord:
        seq = record.get("seq")
        command = self.commands.get(seq)  # type: ignore[arg-type]
        if command is None:
            command = self.commands[seq] = CommandRecord(seq, record.get("name", ""))  # type: ignore[arg-type]
        return command

    def _on_run_started(self, record: dict[str, Any]) -> None:
        self.info = record

    def _on_runner(self, record: dict[str, Any]) -> None:
        self.runners[record.get("name")] = record  # type: ignore[index]

    def _on_run_finished(self, record: dict[str, Any]) -> None:
        self.finished = record

    def _on_queued(self, record: dict[str, Any]) -> None:
        command = self._command(record)
        command.command = record.get("command")
        command.work_relpath = record.get("work_relpath")
        command.queued = record.get("time")

    def _on_started(self, record: dict[str, Any]) -> None:
        command = self._command(record)
        command.attempts.append(_attempt_from(record, record.get("time"), len(command.attempts)))
        command.status = "running"

    def _end_attempt(self, record: dict[str, Any]) -> tuple[CommandRecord, Attempt]:
        command = self._command(record)
        self.pending_starts.pop(command.seq, None)
        attempts = command.attempts
        if attempts and attempts[-1].status == "running":
            attempt = attempts[-1]
            attempt.finish(record)
        else:
            attempt = _ended_attempt(record, len(attempts))
            if not record.get("resumed") and record.get("start") is not None:
                attempts.append(attempt)
            # else it did not run in this run: resumed from an earlier one, or cancelled while queued
        return command, attempt

    def _on_retrying(self, record: dict[str, Any]) -> None:
        self._end_attempt(record)[0].status = "queued"

    def _on_finished(self, record: dict[str, Any]) -> None:
        command, command.ended = self._end_attempt(record)
        command.finished_at = record.get("time")
        command.status = command.ended.status
        command.resumed = bool(record.get("resumed"))

    def build(self) -> Run:
        for line in list(self.pending_starts.values()):  # attempts still running
            record = self._parse(line)
            if record is not None:
                self._on_started(record)
        if not self.info and not self.commands:
            raise HistoryError(f"{self.path} is not a parallux run log (no run_started event)")
        commands = sorted(self.commands.values(), key=lambda c: (c.seq is None, c.seq or 0))
        return Run(self.path, self.info, self.runners, commands, self.finished, self.last_time, self.skipped)


def _last_time(lines: list[Any]) -> float | None:
    """The time of the last event (where a run killed with no summary ended)."""
    for line in reversed(lines[-50:]):
        try:
            record = jsonl.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("time"), (int, float)):
            return float(record["time"])
    return None


def _seq_of(line: Any) -> int | None:
    """The seq of one of our own started lines without parsing it all (None: parse it all)."""
    at = line.find(b'"seq":' if isinstance(line, bytes) else '"seq":')
    if at < 0:
        return None
    end = line.find(b"," if isinstance(line, bytes) else ",", at)
    if end < 0:
        return None
    try:
        return int(line[at + 6:end])
    except ValueError:
        return None


def run_state(info: dict[str, Any], finished: dict[str, Any] | None) -> str:
    """finished; running (its parallux is alive); or killed (no summary, and its process is gone)."""
    if finished is not None:
        return "finished"
    pid, host = info.get("pid"), info.get("host")
    if host == socket.gethostname() and isinstance(pid, int) and _alive(pid):
        return "running"
    return "killed" if host == socket.gethostname() else "unknown"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- timeline lanes ---------------------------------------------------------------------------------------


@dataclass
class Lanes:
    """A runner's lanes on the timeline: its cores (with a core pool) or its slots 0..n-1."""

    kind: str  # "core" or "slot"
    values: list[int]


def assign_slots(run: Run, now: float | None = None) -> dict[str, Lanes]:
    """Give every attempt a lane of its runner (``attempt.slot``): a core where the runner has a core pool
    (an attempt on several cores is on the lane of its lowest), else a slot.

    The log does not say which of a runner's slots a command held, so slots are rebuilt from the intervals:
    greedy interval partitioning (in order of start, the lowest lane free at that instant) needs exactly as
    many lanes as commands ran at once at the busiest moment, and no two attempts of a lane overlap.
    """
    end_of_running = now if now is not None else (run.end or time.time())
    by_runner: dict[str, list[Attempt]] = {}
    for attempt in run.attempts():
        if attempt.start is not None:
            by_runner.setdefault(attempt.runner or "?", []).append(attempt)
    lanes: dict[str, Lanes] = {}
    for name in [*run.runners, *by_runner]:
        if name in lanes:
            continue
        attempts = by_runner.get(name, [])
        pool = (run.runners.get(name) or {}).get("core_pool")
        if pool or any(a.cores for a in attempts):
            used = {core for a in attempts for core in a.cores}
            lanes[name] = Lanes("core", sorted(set(pool or ()) | used))
            for attempt in attempts:
                attempt.slot = min(attempt.cores) if attempt.cores else -1
        else:
            lanes[name] = Lanes("slot", list(range(_pack(attempts, end_of_running))))
    return lanes


def _pack(attempts: list[Attempt], end_of_running: float) -> int:
    attempts.sort(key=attrgetter("start"))
    busy: list[tuple[float, int]] = []  # (end, slot)
    free: list[int] = []
    count = 0
    push, pop = heapq.heappush, heapq.heappop
    for attempt in attempts:
        start = attempt.start
        while busy and busy[0][0] <= start:  # type: ignore[operator]
            push(free, pop(busy)[1])
        if free:
            slot = pop(free)
        else:
            slot, count = count, count + 1
        attempt.slot = slot
        end = attempt.end if attempt.end is not None else end_of_running
        push(busy, (end if end > start else start, slot))  # type: ignore[operator]
    return count


# -- stderr tails ---------------------------------------------------------------------------------------


def stderr_tail(attempt: Attempt, runner: dict[str, Any] | None, max_bytes: int = STDERR_TAIL_BYTES) -> str | None:
    """The end of a failed attempt's stderr: from the log when the launcher reported it, else read from the
    work dir when that is on this machine (a local runner). Never raises."""
    if attempt.stderr_tail:
        return attempt.stderr_tail
    kind = (runner or {}).get("kind")
    if attempt.work_dir is None or (kind is not None and kind != "local") or \
            (attempt.host is not None and attempt.host != socket.gethostname()):
        return None
    try:
        with open(os.path.join(attempt.work_dir, "stderr.txt"), "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return None
    text = data.decode("utf-8", "replace")
    return text[text.find("\n") + 1:] if len(data) == max_bytes and "\n" in text else text


# -- the history: every run of every config ---------------------------------------------------------------


@dataclass
class RunEntry:
    """One run as ``parallux runs`` lists it: read from the first and last lines of its log only."""

    run_id: str
    path: str
    info: dict[str, Any]
    finished: dict[str, Any] | None
    last_time: float | None
    started: bool

    @property
    def start(self) -> float:
        return float(self.info.get("time") or 0.0)

    @property
    def state(self) -> str:
        return run_state(self.info, self.finished)

    @property
    def duration(self) -> float | None:
        if self.finished is not None and self.finished.get("elapsed") is not None:
            return float(self.finished["elapsed"])
        end = time.time() if self.state == "running" else self.last_time
        return end - self.start if end is not None and self.start else None

    def as_dict(self) -> dict[str, Any]:
        finished = self.finished or {}
        return {"run_id": self.run_id, "config": self.info.get("config"), "argv": self.info.get("argv", []),
                "start": self.start, "duration": self.duration, "state": self.state,
                "counts": finished.get("counts"), "exit_status": finished.get("exit_status"),
                "started_commands": self.started, "log": self.path}


def history_files(config: str | None = None, root: str | None = None) -> list[str]:
    """Every run log of the history (of one config), newest run id first. Includes the flat
    ``runs/<run id>.jsonl`` files of parallux before 0.2 (filtered by config when they are read)."""
    root = root or default_log_dir()
    directories = [config_dir(config, root)] if config else _subdirectories(root)
    paths = [os.path.join(d, name) for d in directories for name in _logs_in(d)]
    paths += [os.path.join(root, name) for name in _logs_in(root)]
    return sorted(paths, key=lambda p: os.path.basename(p), reverse=True)


def _subdirectories(root: str) -> list[str]:
    try:
        return [e.path for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _logs_in(directory: str) -> list[str]:
    try:
        return [n for n in os.listdir(directory) if n.endswith(".jsonl") and n != LATEST]
    except OSError:
        return []


def read_entry(path: str) -> RunEntry | None:
    """The first and the last lines of a log; None when it is not a readable run log."""
    try:
        with open(path, "rb") as f:
            first = f.readline()
            size = f.seek(0, os.SEEK_END)
            f.seek(max(len(first), size - TAIL_BYTES))
            tail = f.read()
            info = json.loads(first)
            finished, last_time = _last_event(tail)
            started = _started_commands(f, info, finished)
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("event") != "run_started":
        return None
    run_id = str(info.get("run_id") or os.path.splitext(os.path.basename(path))[0])
    return RunEntry(run_id, path, info, finished, last_time if last_time is not None else info.get("time"), started)


def _last_event(tail: bytes) -> tuple[dict[str, Any] | None, float | None]:
    for line in reversed(tail.split(b"\n")):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            return (record if record.get("event") == "run_finished" else None), record.get("time")
    return None, None


def _started_commands(f: Any, info: dict[str, Any], finished: dict[str, Any] | None) -> bool:
    """Did the run start a command? Its summary says so (schema 2); else look for a started event."""
    if finished is not None and "started" in finished:
        return bool(finished["started"])
    if finished is not None and finished.get("busy_seconds"):  # schema 1: command time means commands ran
        return True
    f.seek(0)
    previous = b""
    while chunk := f.read(1 << 20):
        if b'"event":"started"' in previous[-32:] + chunk:
            return True
        previous = chunk
    return False


def list_runs(config: str | None = None, every: bool = False, limit: int | None = None,
              root: str | None = None) -> list[RunEntry]:
    """Runs newest first: those that started commands, or ``every`` run (config errors too)."""
    wanted = os.path.abspath(config) if config else None
    entries = []
    for path in history_files(config, root):
        entry = read_entry(path)
        if entry is None or (wanted and entry.info.get("config") != wanted):
            continue
        if every or entry.started:
            entries.append(entry)
    entries.sort(key=lambda e: (e.start, e.run_id), reverse=True)
    return entries[:limit] if limit is not None else entries


def resolve_run(spec: str | None, config: str | None = None, root: str | None = None) -> str:
    """The log of RUN: a path, a run id or a unique prefix of one, or (None, ``latest``) the newest run that
    started commands (of ``config``, when given)."""
    root = root or default_log_dir()
    if spec is None or spec == "latest":
        return _latest(config, root)
    if os.path.isfile(spec):
        return os.path.abspath(spec)
    if os.sep in spec or spec.endswith(".jsonl"):
        raise HistoryError(f"no run log {spec!r}")
    files = history_files(config, root)
    ids = {os.path.splitext(os.path.basename(p))[0]: p for p in reversed(files)}
    if spec in ids:
        return _existing(ids[spec])
    matches = sorted({run_id for run_id in ids if run_id.startswith(spec)}, reverse=True)
    if len(matches) == 1:
        return _existing(ids[matches[0]])
    if not matches:
        raise HistoryError(f"no run {spec!r} in {root} (`parallux runs --all` lists the runs)")
    shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
    raise HistoryError(f"{spec!r} is the start of {len(matches)} run ids ({shown}): give more of it")


def _latest(config: str | None, root: str) -> str:
    link = os.path.join(config_dir(config, root) if config else root, LATEST)
    if os.path.exists(link):
        return os.path.realpath(link)
    runs = list_runs(config, root=root, limit=1)
    if runs:
        return runs[0].path
    where = f" of {config}" if config else ""
    raise HistoryError(f"no run{where} that started commands in {root}")


def _existing(path: str) -> str:
    if not os.path.exists(path):  # a symlink to a --log file that was removed since
        raise HistoryError(f"the run log {os.path.realpath(path)} no longer exists")
    return path


def geometric_mean(values: list[float]) -> float | None:
    values = [v for v in values if v > 0 and math.isfinite(v)]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))

