"""The launcher as a real subprocess, spoken to over its JSON-lines protocol by a client, and the /proc reads
that find the processes it started (by their ``PARALLUX_JOB_MARK``, never by name).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

from parallux import _launcher

LAUNCHER = Path(_launcher.__file__)
EVENT_TIMEOUT = 5.0


class ProcStat(NamedTuple):
    state: str
    ppid: int
    pgrp: int
    session: int


def proc_stat(pid: int) -> ProcStat | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()  # the command name may itself hold spaces and parentheses
    return ProcStat(fields[0], int(fields[1]), int(fields[2]), int(fields[3]))


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def is_live(pid: int) -> bool:
    """Running or sleeping; a zombie is dead (nobody may ever reap it if our init does not)."""
    stat = proc_stat(pid)
    return stat is not None and stat.state not in ("Z", "X")


def marked_pids(mark: str) -> list[int]:
    wanted = f"{_launcher.MARK_VAR}={mark}".encode()
    found = []
    for pid in all_pids():
        try:
            items = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in items and is_live(pid):
            found.append(pid)
    return found


def stop_marked(mark: str) -> None:
    for pid in marked_pids(mark):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# --- a protocol client -----------------------------------------------------------------------------------------


class LauncherClient:
    """One launcher subprocess; events are read by a thread so neither side can block on a full pipe."""

    def __init__(self, directory: Path, env: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.marks: list[str] = []
        self.stderr = open(directory / "launcher-stderr.txt", "wb")
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", str(LAUNCHER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, cwd=directory, env=env)
        self.pid = self.proc.pid
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.unclaimed: list[dict[str, Any]] = []
        self.reader = threading.Thread(target=self._read_events, daemon=True)
        self.reader.start()

    def _read_events(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))
        self.events.put(None)

    def send(self, **request: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()

    def expect(self, kinds: str | tuple[str, ...], job_id: object = None,
               timeout: float = EVENT_TIMEOUT) -> dict[str, Any]:
        """The next event of one of these kinds (for this job id); others are kept for later calls."""
        kinds = (kinds,) if isinstance(kinds, str) else kinds

        def wanted(event: dict[str, Any]) -> bool:
            return event["ev"] in kinds and (job_id is None or event.get("id") == job_id)

        for event in self.unclaimed:
            if wanted(event):
                self.unclaimed.remove(event)
                return event
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {kinds} event for id {job_id} within {timeout} s") from None
            if event is None:
                raise AssertionError(f"launcher closed its stdout while we waited for {kinds} (id {job_id})")
            if wanted(event):
                return event
            self.unclaimed.append(event)

    def start(self, job_id: int, argv: list[str], work_dir: Path, **options: Any) -> dict[str, Any]:
        """Send a run request with a fresh mark; return the ``started`` event (its ``mark`` added). Marks have
        parallux's shape, ``<run id>@<runner>.<seq>.<attempt>``, each with a run id of its own."""
        mark = f"test-{uuid.uuid4().hex}@r1.{job_id}.1"
        self.marks.append(mark)
        self.send(op="run", id=job_id, argv=argv, work_dir=str(work_dir), mark=mark,
                  command_text=options.pop("command_text", " ".join(argv)), **options)
        started = self.expect("started", job_id)
        return dict(started, mark=mark)

    def run(self, job_id: int, argv: list[str], work_dir: Path, **options: Any) -> dict[str, Any]:
        self.start(job_id, argv, work_dir, **options)
        return self.expect("exit", job_id)

    def serving_pid(self) -> int:
        """The launcher process itself: a child of the process started (``pid``), which guards it."""
        self.send(op="hello")
        return int(self.expect("hello")["pid"])

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def shut_down(self) -> None:
        """End the launcher and whatever it left behind -- only processes this test started."""
        self.close_stdin()
        try:
            self.proc.wait(timeout=EVENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for mark in self.marks:
            stop_marked(mark)
        self.reader.join(timeout=EVENT_TIMEOUT)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.stderr.close()


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]
