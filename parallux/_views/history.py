"""The history: every run of every config, found by directory listing; RUN (an id, a prefix, a path) resolved.

The layout is drawn in ``_statedir``. Listing reads the first and last lines of each log only, so ``parallux
runs`` stays quick however big the runs are.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from .._statedir import LATEST, config_dir, default_log_dir
from .records import HistoryError, run_state

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
