"""The history: every run of every config, found by directory listing; RUN (an id, a prefix, a path) resolved.

The layout is drawn in ``_statedir``. Listing reads the first and last lines of each log only, so ``parallux
runs`` stays quick however big the runs are.
"""

from __future__ import annotations

import mmap
import os
import stat
import time
from dataclasses import dataclass
from typing import Any, Callable

from .._statedir import LATEST, config_dir, default_log_dir
from . import jsonl, logfile
from .records import HistoryError, run_state
from .schema import problem

TAIL_BYTES = 64 * 1024


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


def read_entry(path: str, problems: list[tuple[int, str]] | None = None) -> RunEntry | None:
    """The run of a log, from its first and last lines; None when it is not a readable run log. The run is
    the one the file's name says (a run id, in the history), when the file holds several (a log written
    before each run had its own). A record read that does not fit is added to ``problems``."""
    problems = [] if problems is None else problems
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # (a FIFO would block the listing)
            return None
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _entry(path, data, problems)
    except (OSError, ValueError):  # unreadable, or empty (mmap refuses an empty file)
        return None


def _entry(path: str, data: Any, problems: list[tuple[int, str]]) -> RunEntry | None:
    stem = os.path.splitext(os.path.basename(path))[0]
    found = logfile.Runs(data).find(stem)
    if found is None:
        return None
    start, end = found
    first_end = data.find(b"\n", start, end)
    first_end = end if first_end < 0 else first_end
    info = _fitting(data[start:first_end], lambda: _line_of(data, start), problems)
    if info is None or info.get("event") != "run_started":
        return None
    finished, last_time = _last_event(data, max(first_end, end - TAIL_BYTES), end, problems)
    started = _started_commands(data, start, end, finished)
    run_id = info.get("run_id") or stem
    return RunEntry(run_id, path, info, finished, last_time if last_time is not None else info.get("time"), started)


def _fitting(line: bytes, number: Callable[[], int], problems: list[tuple[int, str]]) -> dict[str, Any] | None:
    """The record on a line, when it is one that fits (one that does not is added to ``problems``)."""
    try:
        record = jsonl.loads(line)
    except ValueError:
        return None
    why = problem(record)
    if why is not None:
        problems.append((number(), why))
        return None
    return record


def _line_of(data: Any, offset: int) -> int:
    return data[:offset].count(b"\n") + 1


def _last_event(data: Any, start: int, end: int,
                problems: list[tuple[int, str]]) -> tuple[dict[str, Any] | None, float | None]:
    """The last record of the run that fits: its summary if it is one, and its time."""
    tail = data[start:end]
    offset = len(tail) + 1
    for line in reversed(tail.split(b"\n")):
        offset -= len(line) + 1  # where the line begins in the tail
        record = _fitting(line, lambda: _line_of(data, start + offset), problems) if line.strip() else None
        if record is not None:
            when = record.get("time")
            return (record if record.get("event") == "run_finished" else None), \
                when if type(when) in (int, float) else None
    return None, None


def _started_commands(data: Any, start: int, end: int, finished: dict[str, Any] | None) -> bool:
    """Did the run start a command? Its summary says so (schema 2); else look for a started event."""
    if finished is not None and "started" in finished:
        return bool(finished["started"])
    if finished is not None and finished.get("busy_seconds"):  # schema 1: command time means commands ran
        return True
    if data.find(b'"event":"started"', start, end) >= 0 or data.find(b'"event":"retrying"', start, end) >= 0:
        return True
    # (a started record is written only for an attempt still running at a flush: look for an attempt's end)
    at = data.find(b'{"event":"finished"', start, end)
    while at >= 0:
        line_end = data.find(b"\n", at, end)
        try:
            record = jsonl.loads(bytes(data[at:end if line_end < 0 else line_end]))
        except ValueError:  # (a torn last line)
            record = None
        if isinstance(record, dict) and record.get("runner") is not None and not record.get("resumed"):
            return True
        at = data.find(b'{"event":"finished"', at + 1, end)
    return False


def list_runs(config: str | None = None, every: bool = False, limit: int | None = None, root: str | None = None,
              warn: Callable[[str, list[tuple[int, str]]], None] | None = None) -> list[RunEntry]:
    """Runs newest first: those that started commands, or ``every`` run (config errors too). ``warn`` is told
    of the records of a log that were skipped (a log whose first record does not fit is left out)."""
    wanted = os.path.abspath(config) if config else None
    entries = []
    for path in history_files(config, root):
        problems: list[tuple[int, str]] = []
        entry = read_entry(path, problems)
        if problems and warn is not None:
            warn(os.path.realpath(path), problems)
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
        # the history entry it points to, named by its run id (which says the run, in a file of several)
        return os.path.join(os.path.dirname(link), os.readlink(link)) if os.path.islink(link) else link
    runs = list_runs(config, root=root, limit=1)
    if runs:
        return runs[0].path
    where = f" of {config}" if config else ""
    raise HistoryError(f"no run{where} that started commands in {root}")


def _existing(path: str) -> str:
    if not os.path.exists(path):  # a symlink to a --log file that was removed since
        raise HistoryError(f"the run log {os.path.realpath(path)} no longer exists")
    return path
