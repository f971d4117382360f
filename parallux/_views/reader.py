"""Reading one run log back into records, fast enough for 100,000 commands, and the stderr files it names.

It works on a run that is still going (its log is flushed every 50 ms; the last line may be half written) and
on a run that was killed (no ``run_finished``). :func:`load_run` costs one ``json.loads`` per event it needs:
about a second for a 100,000-command run.
"""

from __future__ import annotations

import gc
import os
import socket
from typing import Any

from . import jsonl
from .records import Attempt, CommandRecord, HistoryError, Run

STDERR_TAIL_BYTES = 4096


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


def _ended_attempt(record: dict[str, Any], number: int) -> Attempt:
    """An attempt from its retrying/finished event alone: that repeats the started event's fields."""
    get = record.get
    end = get("end")
    return Attempt(get("seq"), get("attempt", number), get("runner"), get("host"), get("cores") or [],  # type: ignore[arg-type]
                   get("numa_node"), get("work_dir"), get("start"), end if end is not None else get("time"),
                   get("status") or "error", get("returncode"), get("user_seconds"), get("system_seconds"),
                   get("max_rss_kb"), get("signal"), get("error"), get("stderr_tail"))


def _started_attempt(record: dict[str, Any], number: int) -> Attempt:
    """An attempt from its started event: running, until a retrying/finished event ends it."""
    get = record.get
    return Attempt(get("seq"), get("attempt", number), get("runner"), get("host"), get("cores") or [],  # type: ignore[arg-type]
                   get("numa_node"), get("work_dir"), get("time"))


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
                                                  get("time"), work_generated=get("work_generated"))
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
        command.work_generated = record.get("work_generated")
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
