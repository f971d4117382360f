"""The run log: one JSON line per command event, on the machine that runs parallux.

Written as events happen and flushed every 50 ms (and at the end, also after Ctrl-C or SIGTERM), so an
interrupted run leaves a complete record of every command that finished; a SIGKILL loses at most the last
50 ms. The schema is in docs/reference.md ("Run log").
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from typing import IO, Any

from ._handles import Command, Result

SCHEMA_VERSION = 1


def default_log_dir() -> str:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "parallux", "runs")


class RunLog:
    """An observer of engine events that appends them to ``<dir>/<run id>.jsonl``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def open(self, run_id: str, config: str, argv: list[str]) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        # Buffered; the engine calls flush() every 50 ms: a few writes a second instead of one per event.
        self._file = open(self.path, "a", encoding="utf-8")
        self._write({"event": "run_started", "schema": SCHEMA_VERSION, "run_id": run_id,
                     "config": os.path.abspath(config), "argv": argv, "time": time.time(), "pid": os.getpid(),
                     "host": socket.gethostname(), "python": sys.version.split()[0]})
        self.flush()
        self._link_latest()

    def _link_latest(self) -> None:
        latest = os.path.join(os.path.dirname(self.path), "latest.jsonl")
        try:
            if os.path.islink(latest) or not os.path.exists(latest):
                tmp = latest + f".{os.getpid()}"
                os.symlink(os.path.basename(self.path), tmp)
                os.replace(tmp, latest)
        except OSError:
            pass  # a convenience only

    def __call__(self, event: str, command: Command, **details: Any) -> None:
        if self._file is None or event == "planned":
            return
        record: dict[str, Any] = {"event": event, "time": time.time(), "seq": command.seq, "name": command.name}
        if event == "queued":
            record["command"] = command.command_text
            record["work_relpath"] = command.work_relpath
        else:
            record.update(runner=command.runner_name, work_dir=command.work_dir, cores=list(command.cores),
                          numa_node=command.numa_node, attempt=command.attempt)
        result = details.get("result")
        if result is not None:
            record.update(outcome(result))
        self._write(record)

    def flush(self) -> None:
        """Write out what is buffered (the engine calls this every few tens of milliseconds)."""
        if self._file is not None:
            self._file.flush()

    def close(self, summary: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._write({"event": "run_finished", "time": time.time(), **summary})
        self._file.close()
        self._file = None

    def _write(self, record: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")


def outcome(result: Result) -> dict[str, Any]:
    return {"status": result.status, "returncode": result.returncode, "start": result.start_time,
            "end": result.end_time, "duration": result.duration, "user_seconds": result.user_seconds,
            "system_seconds": result.system_seconds, "max_rss_kb": result.max_rss_kb, "signal": result.signal,
            "error": result.error, "resumed": result.resumed, "runner": result.runner_name,
            "work_dir": result.work_dir}
