"""What the user sees while a run goes and when it ends: progress, failures as they happen, the summary.

One :class:`Progress` observes the engine's events and keeps the counts. How it shows them depends on where
the output goes: a live display on a terminal (``_live.py``, rich), plain lines otherwise (a line per failure
and a periodic one-line summary), only errors and the summary with ``--quiet``, every event with ``--verbose``.
Everything goes to stderr, so a config's own stdout stays clean for piping.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections import Counter, defaultdict
from typing import IO, Any

from ._errors import describe_failure
from ._handles import FAILED_STATUSES, Command, Result

SHOWN_FAILURES = 20


class Progress:
    """Counts of the run's commands, kept up to date by engine events (engine thread) and read anywhere."""

    def __init__(self) -> None:
        self.started_at = time.monotonic()
        self.queued = 0
        self.running = 0
        self.statuses: Counter[str] = Counter()
        self.retries = 0
        self.resumed = 0
        self.busy_seconds: dict[str, float] = defaultdict(float)
        self.per_runner: Counter[str] = Counter()
        self.failures: list[Result] = []
        self.failure_count = 0
        self.running_now: dict[int, Command] = {}
        self.lock = threading.Lock()
        self.listeners: list[Any] = []

    def __call__(self, event: str, command: Command, **details: Any) -> None:
        with self.lock:
            if event == "queued":
                self.queued += 1
            elif event == "started":
                self.queued -= 1
                self.running += 1
                self.running_now[command.seq] = command
            elif event == "retrying":
                self.running -= 1
                self.queued += 1
                self.retries += 1
                self.running_now.pop(command.seq, None)
            elif event == "finished":
                self._finished(command, details["result"])
        for listener in self.listeners:
            listener(event, command, **details)

    def _finished(self, command: Command, result: Result) -> None:
        if command.seq in self.running_now:
            del self.running_now[command.seq]
            self.running -= 1
        elif not result.resumed:
            self.queued -= 1  # ended without starting: cancelled, halted, or no runner left
        self.statuses[result.status] += 1
        if result.resumed:
            self.resumed += 1
        if result.runner_name is not None and result.duration is not None and not result.resumed:
            self.busy_seconds[result.runner_name] += result.duration
            self.per_runner[result.runner_name] += 1
        if result.status in FAILED_STATUSES:
            self.failure_count += 1
            if len(self.failures) < SHOWN_FAILURES:
                self.failures.append(result)

    # -- derived figures -----------------------------------------------------------------------------------

    @property
    def finished(self) -> int:
        return sum(self.statuses.values())

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def eta(self) -> float | None:
        """Seconds left, from the pace so far; None until something finished."""
        done = self.finished - self.resumed
        if done <= 0 or self.queued + self.running == 0:
            return None
        return self.elapsed / done * (self.queued + self.running)

    def line(self) -> str:
        with self.lock:
            failed = self.failure_count
            eta = self.eta()
            cancelled = self.statuses["cancelled"]
            text = (f"{self.statuses['ok']} done, {self.running} running, {failed} failed, "
                    f"{self.queued} queued" + (f", {cancelled} cancelled" if cancelled else "")
                    + f", {format_seconds(self.elapsed)} elapsed")
        return text + (f", ETA {format_seconds(eta)}" if eta is not None else "")

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {"counts": dict(self.statuses), "elapsed": round(self.elapsed, 3), "retries": self.retries,
                    "resumed": self.resumed, "busy_seconds": {k: round(v, 3) for k, v in self.busy_seconds.items()}}


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class PlainReporter:
    """Line-oriented output for logs and pipes: failures as they happen, a summary line now and then."""

    def __init__(self, progress: Progress, *, verbose: bool, quiet: bool, interval: float,
                 stream: IO[str] | None = None) -> None:
        self.progress = progress
        self.verbose = verbose
        self.quiet = quiet
        self.interval = interval
        self.stream = stream or sys.stderr
        self._failures: queue.SimpleQueue[Result | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        progress.listeners.append(self.on_event)

    def start(self) -> None:
        if not self.quiet:
            self._thread = threading.Thread(target=self._serve, name="parallux-progress", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._failures.put(None)
            self._thread.join()
            self._thread = None

    def _serve(self) -> None:
        """Failure reports and the periodic line, written from this thread: describing a failure reads its
        stderr, possibly from a remote runner, which must not happen on the engine thread."""
        interval = self.interval if self.interval > 0 else None
        next_line = time.monotonic() + (interval or 0)
        while True:
            timeout = max(0.0, next_line - time.monotonic()) if interval else None
            try:
                result = self._failures.get(timeout=timeout)
            except queue.Empty:
                self.emit("parallux: " + self.progress.line())
                next_line = time.monotonic() + (interval or 0)
                continue
            if result is None:
                return
            self.emit("parallux: FAILED " + describe_failure(result, tail_lines=3).replace("\n", "\n  "))

    def on_event(self, event: str, command: Command, **details: Any) -> None:
        result: Result | None = details.get("result")
        if self.verbose and event in ("started", "finished", "retrying"):
            extra = f" {result.status}" if result is not None else ""
            where = f" on {command.runner_name}" if command.runner_name else ""
            self.emit(f"parallux: {event} {command.name!r}{where}{extra} ({command.work_dir})")
        elif event == "finished" and result is not None and result.status in FAILED_STATUSES:
            if not self.quiet:
                self._failures.put(result)
        elif event == "retrying" and result is not None and not self.quiet:
            self.emit(f"parallux: retrying {command.name!r} ({result.status}), attempt {command.attempt + 2}")

    def emit(self, text: str) -> None:
        try:
            print(text, file=self.stream, flush=True)
        except OSError:  # stderr is gone (the terminal closed): the run log still records everything
            pass


def summary_text(progress: Progress, log_path: str | None) -> str:
    """The end-of-run report: counts by status, time per runner, every failure with its work dir."""
    with progress.lock:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(progress.statuses.items()))
        noun = "command" if progress.finished == 1 else "commands"
        lines = [f"parallux: {progress.finished} {noun} ({counts or 'none'}) in {format_seconds(progress.elapsed)}"]
        if progress.resumed:
            lines.append(f"  resumed: {progress.resumed} commands skipped, already done in an earlier run")
        if progress.retries:
            lines.append(f"  retries: {progress.retries}")
        for runner, busy in sorted(progress.busy_seconds.items()):
            count = progress.per_runner[runner]
            lines.append(f"  runner {runner}: {count} command{'' if count == 1 else 's'}, "
                         f"{format_seconds(busy)} of command time")
        for result in progress.failures:
            lines.append("  " + describe_failure(result, tail_lines=3).replace("\n", "\n  "))
        if progress.failure_count > len(progress.failures):
            lines.append(f"  ... and {progress.failure_count - len(progress.failures)} more failures "
                         f"(see the run log)")
    if log_path:
        lines.append(f"  run log: {log_path}")
    return "\n".join(lines)


def is_terminal(stream: IO[str]) -> bool:
    return stream.isatty() and os.environ.get("TERM") != "dumb"
