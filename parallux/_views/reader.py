"""Reading one run log back into records, fast enough for 100,000 commands, and the stderr files it names.

It works on a run that is still going (its log is flushed every 50 ms; the last line may be half written) and
on a run that was killed (no ``run_finished``). :func:`load_run` costs one ``json.loads`` per event it needs:
about a second for a 100,000-command run.
"""

from __future__ import annotations

import errno
import gc
import os
import socket
import stat
from operator import attrgetter
from typing import Any

from .._launcher import UnsafeWorkDir, open_below_workspace, open_output
from . import jsonl, logfile
from .logfile import log_range, open_log, read_blocks
from .records import Attempt, CommandRecord, HistoryError, Run
from .schema import COMMAND_EVENTS, HIGHEST, LOWEST, MACHINE_EVENTS, objects_fit, problem

STDERR_TAIL_BYTES = 4096


def load_run(path: str) -> Run:
    """Read a run log: the records of its run only (a file written before each run had its own may hold
    several: the one named by the file's name, a run id in the history, else the last). A record that does
    not fit (``schema``), a torn line and a half-written last line (the run is going) are skipped."""
    try:
        data = _read_log(path)
    except OSError as exc:
        raise HistoryError(f"cannot read the run log {path}: {exc.strerror}") from exc
    start, end, others = logfile.Runs(data).pick(os.path.splitext(os.path.basename(path))[0])
    lines = jsonl.split_lines(data[start:end] if (start, end) != (0, len(data)) else data)
    where = (os.path.realpath(path), data.count(b"\n", 0, start) + 1, end == len(data))
    return _checked(lines, where, others)


def load_lines(path: str, offsets: list[int], others: list[str]) -> Run:
    """A run from some lines of its log (those at these byte offsets, in order), read and checked as
    ``load_run`` reads a whole log: a few commands of a run of a million (``scan.Scan.load``)."""
    lines = []
    try:
        with open_log(path) as f:
            for offset in offsets:
                f.seek(offset)
                lines.append(f.readline().rstrip(b"\n"))
    except OSError as exc:
        raise HistoryError(f"cannot read the run log {path}: {exc.strerror}") from exc
    if jsonl.orjson is None:
        lines = [line.decode("utf-8", "replace") for line in lines]
    return _checked(lines, (os.path.realpath(path), 1, True), others)


def _checked(lines: list[Any], where: tuple[str, int, bool], others: list[str]) -> Run:
    # Hundreds of thousands of small dicts and no cycles among them: the cyclic collector would walk them
    # again and again as they pile up (a third of the time for 100,000 commands), for nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        run = _build(lines, *where, strict=False)
        if run is None:
            run = _build(lines, *where, strict=True)
    finally:
        if collecting:
            gc.enable()
    assert run is not None
    run.other_runs = others
    return run


def _build(lines: list[Any], path: str, first_line: int, torn_end: bool, strict: bool) -> Run | None:
    """The run, read optimistically: every record of a command taken as it comes, and the commands and
    attempts built checked at the end, field by field over all of them (a few passes in C: checking each
    record on its own would add half the reading time). None when they do not all fit (or a value broke
    the reading): then ``strict`` reads again, each record checked, and those that do not fit skipped."""
    builder = _RunBuilder(path, first_line, torn_end, strict)
    if strict:
        builder.read(lines)
        return builder.build()
    try:
        builder.read(lines)
        run = builder.build()
    except HistoryError:
        raise
    except Exception:  # whatever a value of the wrong type broke: the strict reading finds and skips it
        return None
    attempts = [*run.attempts(), *builder.unlisted]
    return run if objects_fit(run.commands, attempts) else None


_STARTED = '{"event":"started",'


def _ended_attempt(record: dict[str, Any], number: int) -> Attempt:
    """An attempt from its retrying/finished event alone: that repeats the started event's fields."""
    get = record.get
    end = get("end")
    return Attempt(get("seq"), get("attempt", number), get("runner"), get("host"), get("cores") or [],  # type: ignore[arg-type]
                   get("numa_node"), get("work_dir"), get("start"), end if end is not None else get("time"),
                   get("status") or "error", get("returncode"), get("user_seconds"), get("system_seconds"),
                   get("max_rss_kb"), get("signal"), get("error"), get("stderr_tail"), get("metrics"),
                   memory_limit=get("memory_limit"), gpus=get("gpus") or [])


def _started_attempt(record: dict[str, Any], number: int) -> Attempt:
    """An attempt from its started event: running, until a retrying/finished event ends it."""
    get = record.get
    return Attempt(get("seq"), get("attempt", number), get("runner"), get("host"), get("cores") or [],  # type: ignore[arg-type]
                   get("numa_node"), get("work_dir"), get("time"), gpus=get("gpus") or [])


class _RunBuilder:
    def __init__(self, path: str, first_line: int = 1, torn_end: bool = True, strict: bool = True) -> None:
        self.path = path
        self.strict = strict          # check every record (else only the few that are not a command's)
        self.first_line = first_line  # the number of the run's first line in its file
        self.torn_end = torn_end      # the run's lines end the file: its last may be half written
        self.info: dict[str, Any] = {}
        self.runners: dict[str, dict[str, Any]] = {}
        self.commands: dict[int, CommandRecord] = {}
        self.finished: dict[str, Any] | None = None
        self.last_time: float | None = None
        self.skipped = 0
        self.problems: list[tuple[int, str]] = []  # (line number, why) of each record skipped
        # A started event is read only if no retrying/finished event follows it (the attempt still runs):
        # those repeat its fields. Skipping it saves a third of the parsing. seq -> the index of its line.
        self.pending_starts: dict[int, int] = {}
        self.lines: list[Any] = []
        self.unlisted: list[Attempt] = []  # how commands ended that did not run here (resumed, cancelled)
        self.benchmarks: dict[str, dict[str, Any]] = {}
        self.orders: list[dict[str, Any]] = []
        self.machines: list[dict[str, Any]] = []  # machine, machine_load, probe and noise records, in order
        self.handlers = {"run_started": self._on_run_started, "runner": self._on_runner,
                         "run_finished": self._on_run_finished, "queued": self._on_queued,
                         "started": self._on_started, "retrying": self._on_retrying,
                         "finished": self._on_finished, "benchmark": self._on_benchmark,
                         "order": self.orders.append, **dict.fromkeys(MACHINE_EVENTS, self.machines.append)}

    def read(self, lines: list[Any]) -> None:
        """Every event, in order. The hot path (queued and finished: two thirds of the lines) is inlined:
        100,000 commands are 300,000 lines, and each Python call per line costs tens of milliseconds."""
        self.lines = lines
        decode, pending, handlers, commands = jsonl.loads, self.pending_starts, self.handlers, self.commands
        strict = self.strict
        started = jsonl.prefix(_STARTED, lines[0] if lines else "")
        for index, line in enumerate(lines):
            if not line:
                continue
            if line.startswith(started):
                seq = seq_of(line)
                if seq is not None:
                    pending[seq] = index
                    continue
            try:
                record = decode(line)
            except ValueError:
                self._unreadable(index)
                continue
            if strict or type(record) is not dict or record.get("event") not in COMMAND_EVENTS:
                why = problem(record)
                if why is not None:
                    self.problems.append((self.first_line + index, why))
                    continue
            event = record["event"]
            if event == "finished":
                seq = record.get("seq")
                command = commands.get(seq)  # type: ignore[arg-type]
                if command is not None and not command.attempts and not record.get("resumed") \
                        and record.get("start") is not None:
                    command.ended = attempt = _ended_attempt(record, 0)
                    command.attempts.append(attempt)
                    command.finished_at = record.get("time")
                    command.status = attempt.status
                    if seq in pending:
                        del pending[seq]
                    continue
            elif event == "queued":
                seq = record["seq"]
                if seq not in commands:
                    get = record.get
                    commands[seq] = CommandRecord(seq, get("name", ""), get("command"), get("work_relpath"),
                                                  get("time"), work_generated=get("work_generated"),
                                                  bench=get("bench"), repetition=get("repetition"),
                                                  after=get("after"))
                    continue
            handler = handlers.get(event)
            if handler is not None:
                handler(record)
        self.last_time = last_time(lines)

    def _unreadable(self, index: int) -> None:
        self.skipped += 1
        if not (self.torn_end and index == len(self.lines) - 1):  # (the last line: being written, not torn)
            self.problems.append((self.first_line + index, "not a JSON record (a torn line?)"))

    def _record(self, index: int) -> dict[str, Any] | None:
        """The record on a line; None when it is not one (counted) or does not fit (named, for a warning)."""
        try:
            record = jsonl.loads(self.lines[index])
        except ValueError:
            self._unreadable(index)
            return None
        why = problem(record)
        if why is not None:
            self.problems.append((self.first_line + index, why))
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

    def _on_benchmark(self, record: dict[str, Any]) -> None:
        self.benchmarks[record["key"]] = record

    def _on_run_finished(self, record: dict[str, Any]) -> None:
        self.finished = record

    def _on_queued(self, record: dict[str, Any]) -> None:
        command = self._command(record)
        command.command = record.get("command")
        command.work_relpath = record.get("work_relpath")
        command.work_generated = record.get("work_generated")
        command.bench = record.get("bench")
        command.repetition = record.get("repetition")
        command.after = record.get("after")
        command.queued = record.get("time")

    def _on_started(self, record: dict[str, Any]) -> None:
        command = self._command(record)
        command.attempts.append(_started_attempt(record, len(command.attempts)))
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
            else:
                self.unlisted.append(attempt)
            # else it did not run in this run: resumed from an earlier one, or cancelled while queued
        return command, attempt

    def _on_retrying(self, record: dict[str, Any]) -> None:
        self._end_attempt(record)[0].status = "queued"

    def _on_finished(self, record: dict[str, Any]) -> None:
        command, command.ended = self._end_attempt(record)
        command.finished_at = record.get("time")
        command.status = command.ended.status
        command.resumed = bool(record.get("resumed"))
        if "after" in record:  # (a resumed command has no queued record: its finished one says it)
            command.after = record["after"]

    def build(self) -> Run:
        for index in sorted(self.pending_starts.values()):  # attempts still running
            record = self._record(index)
            if record is not None:
                self._on_started(record)
        if not self.info and not self.commands:
            raise HistoryError(f"{self.path} is not a parallux run log (no run_started event)")
        commands = sorted(self.commands.values(), key=attrgetter("seq"))
        return Run(self.path, self.info, self.runners, commands, self.finished, self.last_time, self.skipped,
                   sorted(self.problems), benchmarks=self.benchmarks, orders=self.orders,
                   machines=self.machines)


def last_time(lines: list[Any]) -> float | None:
    """The time of the last event (where a run killed with no summary ended), from the last 50 lines (the
    scan of a big log keeps only those)."""
    for line in reversed(lines[-50:]):
        try:
            record = jsonl.loads(line)
        except ValueError:
            continue
        if problem(record) is None and type(record.get("time")) in (int, float) \
                and LOWEST <= record["time"] <= HIGHEST:
            return float(record["time"])
    return None


def seq_of(line: Any) -> int | None:
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
        data = _tail_of_stderr(attempt.work_dir, (runner or {}).get("workspace"), max_bytes)
    except (OSError, UnsafeWorkDir):
        return None
    if data is None:
        return None
    text = data.decode("utf-8", "replace")
    return text[text.find("\n") + 1:] if len(data) == max_bytes and "\n" in text else text


def _read_log(path: str) -> bytes:
    """A log's bytes: a regular file only (O_NONBLOCK: a FIFO that took a --log file's place must not block)."""
    with open_log(path) as f:
        return f.read()


def _tail_of_stderr(work_dir: str, workspace: str | None, max_bytes: int) -> bytes | None:
    """The last bytes of the work dir's stderr.txt, reached as the launcher reaches it (no link followed below
    the workspace: one planted there would put another file in a report) and only a regular file (a FIFO
    would block the view)."""
    work_dir = os.path.normpath(work_dir)
    dir_fd = open_below_workspace(work_dir, workspace or os.path.dirname(work_dir), False)[0]
    try:
        fd = open_output(dir_fd, "stderr.txt")
    finally:
        os.close(dir_fd)
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, max_bytes, max(0, size - max_bytes))
    finally:
        os.close(fd)
