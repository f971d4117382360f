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

from ._durations import format_seconds
from ._failures import Cause, describe_cause, describe_failure, failure_cause
from ._handles import Command, Result
from ._status import FAILED_STATUSES
from ._transfer import SHOWN_AFTER, Transfer

SHOWN_IN_SUMMARY = 5   # failures described in full in the summary (after the lines by cause)


class Progress:
    """Counts of the run's commands, kept up to date by engine events (engine thread) and read anywhere."""

    def __init__(self) -> None:
        self.started_at = time.monotonic()
        self.first_start: float | None = None  # when the first command started (after a pending allocation)
        self.queued = 0
        self.running = 0
        self.statuses: Counter[str] = Counter()
        self.retries = 0
        self.resumed = 0
        self.busy_seconds: dict[str, float] = defaultdict(float)
        self.per_runner: Counter[str] = Counter()
        self.statuses_per_runner: dict[str, Counter[str]] = defaultdict(Counter)
        self.resumed_per_runner: Counter[str] = Counter()
        self.inputs_changed = 0     # --resume found them done, but with other inputs: run again
        self.quarantined: dict[str, str] = {}  # runner -> why it was taken out of the pool
        self.restarts: dict[str, list[str]] = defaultdict(list)  # runner -> how each launcher it replaced died
        self.failures: list[Result] = []       # the first SHOWN_IN_SUMMARY, described in full at the end
        self.all_failures: list[Result] = []   # grouped by cause at the end (results are kept anyway)
        self.failure_count = 0
        self.running_now: dict[int, Command] = {}
        self.transfers: list[Transfer] = []  # put()s and get()s under way
        self.lock = threading.Lock()
        self.listeners: list[Any] = []

    def __call__(self, event: str, command: Command, **details: Any) -> None:
        if event == "queued":
            self.queued_all([(command, details)])
            return
        if event == "started":
            self.started_all([(command, details)])
            return
        if event == "finished":
            self.finished_all([(command, details)])
            return
        with self.lock:
            if event == "retrying":
                self.running -= 1
                self.queued += 1
                self.retries += 1
                self.running_now.pop(command.seq, None)
                self._ran_on_runner(details["result"])
            elif event == "quarantined":
                self.quarantined[details["runner"].name] = details["runner"].quarantined
        for listener in self.listeners:
            listener(event, command, **details)

    def started_all(self, items: list[tuple[Command, dict[str, Any]]]) -> None:
        """``started`` for commands started in one step (see ``Observers.hold``)."""
        with self.lock:
            if self.first_start is None:
                self.first_start = time.monotonic()
            self.queued -= len(items)
            self.running += len(items)
            for command, _ in items:
                self.running_now[command.seq] = command
        self._tell("started", items)

    def finished_all(self, items: list[tuple[Command, dict[str, Any]]]) -> None:
        """``finished`` for commands settled in one step (see ``Observers.hold``)."""
        with self.lock:
            for command, details in items:
                self._finished(command, details["result"])
        self._tell("finished", items)

    def _tell(self, event: str, items: list[tuple[Command, dict[str, Any]]]) -> None:
        for listener in self.listeners:
            for command, details in items:
                listener(event, command, **details)

    def queued_all(self, items: list[tuple[Command, dict[str, Any]]]) -> None:
        """``queued`` for each of a group's commands (see ``Observers.queued``)."""
        with self.lock:
            self.queued += len(items)
            self.inputs_changed += sum(command.inputs_changed for command, _ in items)
        self._tell("queued", items)

    def transfer(self, transfer: Transfer) -> None:
        """A put() or get() started or ended (the engine calls this on every observer that has it)."""
        with self.lock:
            if transfer._ended is None:
                self.transfers.append(transfer)
            elif transfer in self.transfers:
                self.transfers.remove(transfer)
        for listener in self.listeners:
            listener("transfer", None, transfer=transfer)

    def runner_event(self, event: str, runner: Any, **details: Any) -> None:
        """A runner's launcher died and a new one is started (``launcher_restarted``): counted and told. Its
        connection dropped, and came back or not (``connection_lost``, ``reconnected``, ``not_reconnected``):
        told."""
        if event == "launcher_restarted":
            with self.lock:
                self.restarts[runner.name].append(details["reason"])
            self.notice(f"runner {runner.name!r}: {details['reason']}; a new launcher is started")
        elif event == "connection_lost":
            self.notice(f"runner {runner.name!r}: {details['reason']}; reconnecting for up to "
                        f"{details['reconnect']:g} s, its commands run on meanwhile")
        elif event == "reconnected":
            self.notice(f"runner {runner.name!r}: reconnected after {details['seconds']:.1f} s; its launcher "
                        f"ran on meanwhile")
        elif event == "not_reconnected":
            self.notice(f"runner {runner.name!r}: {details['reason']}")
        elif event == "reattach_unavailable":
            self.notice(f"runner {runner.name!r}: its launcher cannot wait for a dropped connection "
                        f"({details['reason']}): a drop ends its commands at once")

    def notice(self, text: str) -> None:
        """A line about a runner (see ``Engine.notice``)."""
        for listener in self.listeners:
            listener("notice", None, text=text)

    def _finished(self, command: Command, result: Result) -> None:
        status = result.status
        self.statuses[status] += 1
        if self.running_now.pop(command.seq, None) is not None:
            self.running -= 1
            self._ran_on_runner(result)
        elif result.resumed:
            self.resumed += 1
            self.resumed_per_runner[result.runner_name or "?"] += 1
        else:
            self.queued -= 1  # ended without starting: cancelled, halted, or no runner left
            self._ran_on_runner(result)
        if status in FAILED_STATUSES:
            self.failure_count += 1
            self.all_failures.append(result)
            if len(self.failures) < SHOWN_IN_SUMMARY:
                self.failures.append(result)

    def _ran_on_runner(self, result: Result) -> None:
        """Per runner, every attempt that ran there counts (a retried one too: it ran, and failed there)."""
        runner = result.runner_name
        if runner is None:
            return
        self.statuses_per_runner[runner][result.status] += 1
        duration = result.duration
        if duration is not None:
            self.busy_seconds[runner] += duration
            self.per_runner[runner] += 1

    # -- derived figures -----------------------------------------------------------------------------------

    @property
    def finished(self) -> int:
        return sum(self.statuses.values())

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def eta(self) -> float | None:
        """Seconds left, from the pace since the first command started (the wait for a Slurm allocation, or
        for a connection, is no pace); None until something finished."""
        done = self.finished - self.resumed
        if done <= 0 or self.queued + self.running == 0:
            return None
        busy = time.monotonic() - (self.first_start if self.first_start is not None else self.started_at)
        return busy / done * (self.queued + self.running)

    def line(self) -> str:
        with self.lock:
            timed_out = self.statuses["timeout"]  # apart from "failed": a hang is not a crash
            failed = self.failure_count - timed_out
            eta = self.eta()
            cancelled = self.statuses["cancelled"]
            text = (f"{self.statuses['ok']} done, {self.running} running, {failed} failed, "
                    + (f"{timed_out} timed out, " if timed_out else "")
                    + f"{self.queued} queued" + (f", {cancelled} cancelled" if cancelled else "")
                    + f", {format_seconds(self.elapsed)} elapsed")
        return text + (f", ETA {format_seconds(eta)}" if eta is not None else "")

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {"counts": dict(self.statuses), "elapsed": round(self.elapsed, 3), "retries": self.retries,
                    "resumed": self.resumed, "busy_seconds": {k: round(v, 3) for k, v in self.busy_seconds.items()}}


def format_bytes(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    size = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


def transfer_line(transfer: Transfer) -> str:
    """A transfer as the progress display shows it."""
    if transfer._ended is None:
        return (f"{transfer._what}: {format_bytes(transfer.bytes_sent)} of {format_bytes(transfer._bytes_total)}, "
                f"{format_seconds(transfer._seconds)}")
    skipped = f" ({transfer.files_skipped} unchanged)" if transfer.files_skipped else ""
    return (f"{transfer._what}: {transfer.files_sent} file{'' if transfer.files_sent == 1 else 's'}{skipped}, "
            f"{format_bytes(transfer.bytes_sent)} in {format_seconds(transfer._seconds)}")


SHOWN_PER_CAUSE = 3  # failures (and retries) of one cause described as they happen; the rest are counted


class FailureDigest:
    """Which failures to describe as they happen: the first SHOWN_PER_CAUSE of each cause in full, then one
    line saying that the rest are counted, not shown -- 117 failures alike must not scroll 585 lines by."""

    def __init__(self) -> None:
        self.seen: Counter[Cause] = Counter()

    def text(self, result: Result) -> tuple[str, str] | None:
        """("failed", paragraph) or ("note", line), or None for a failure that is only counted."""
        cause = failure_cause(result)
        self.seen[cause] += 1
        if self.seen[cause] <= SHOWN_PER_CAUSE:
            return "failed", describe_failure(result, tail_lines=3).replace("\n", "\n  ")
        if self.seen[cause] == SHOWN_PER_CAUSE + 1:
            return "note", (f"more failures like {result.name!r} ({describe_cause(cause, [result.runner_name])})"
                            " are counted in the summary, not shown")
        return None


def quarantine_notice(runner: str, why: str | None, last: Result) -> str:
    """The one message a quarantined runner gets."""
    return (f"runner {runner!r} {why} (the last: {describe_cause(failure_cause(last), [runner])}); its queued "
            "commands go to the other runners of the pool")


class PlainReporter:
    """Line-oriented output for logs and pipes: failures as they happen, a summary line now and then."""

    def __init__(self, progress: Progress, *, verbose: bool, quiet: bool, interval: float,
                 stream: IO[str] | None = None) -> None:
        self.progress = progress
        self.verbose = verbose
        self.quiet = quiet
        self.interval = interval
        self.stream = stream or sys.stderr
        self._failures: queue.SimpleQueue[tuple[str, Command, Result] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._digest = FailureDigest()
        self._retries_seen: Counter[tuple[str, int | None]] = Counter()
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
                item = self._failures.get(timeout=timeout)
            except queue.Empty:
                self.emit("parallux: " + self.progress.line())
                next_line = time.monotonic() + (interval or 0)
                continue
            if item is None:
                return
            event, command, result = item
            if event == "quarantined":
                assert result.runner is not None
                self.emit("parallux: " + quarantine_notice(result.runner.name, result.runner.quarantined, result))
                continue
            shown = self._digest.text(result)
            if shown is not None:
                self.emit(f"parallux: {'FAILED ' if shown[0] == 'failed' else ''}{shown[1]}")

    def on_event(self, event: str, command: Command, **details: Any) -> None:
        result: Result | None = details.get("result")
        if self.verbose and event in ("started", "finished", "retrying"):
            extra = f" {outcome(result)}" if result is not None else ""
            where = f" on {command.runner_name}" if command.runner_name else ""
            self.emit(f"parallux: {event} {command.name!r}{where}{extra} ({command.work_dir})")
        elif event == "finished" and result is not None and result.status in FAILED_STATUSES:
            if not self.quiet:
                self._failures.put((event, command, result))
        elif event == "quarantined" and result is not None:
            self._failures.put((event, command, result))  # (even with -q: it changes where commands run)
        elif event == "notice" and not self.quiet:
            self.emit(f"parallux: {details['text']}")
        elif event == "transfer" and not self.quiet:
            transfer = details["transfer"]
            if transfer._ended is not None and transfer._seconds >= SHOWN_AFTER:
                self.emit(f"parallux: {transfer_line(transfer)}")
        elif event == "retrying" and result is not None and not self.quiet:
            self._retries_seen[result.status, result.returncode] += 1
            seen = self._retries_seen[result.status, result.returncode]
            if seen <= SHOWN_PER_CAUSE:
                self.emit(f"parallux: retrying {command.name!r} ({result.status}), attempt {command.attempt + 2}")
            elif seen == SHOWN_PER_CAUSE + 1:
                self.emit(f"parallux: more retries after {result.status} are counted in the summary, not shown")

    def emit(self, text: str) -> None:
        try:
            print(text, file=self.stream, flush=True)
        except OSError:  # stderr is gone (the terminal closed): the run log still records everything
            pass


def outcome(result: Result) -> str:
    """How an attempt ended, for a ``-v`` line: ``ok, exit status 0, 0.3 s``."""
    if result.signal is not None:
        how = f"killed by signal {result.signal}"
    elif result.returncode is not None:
        how = f"exit status {result.returncode}"
    else:
        how = "no exit status" + (f": {result.error}" if result.error else "")
    took = "" if result.duration is None else (
        f", {result.duration:.2f} s" if result.duration < 60 else f", {format_seconds(result.duration)}")
    return f"{result.status}, {how}{took}"


def is_terminal(stream: IO[str]) -> bool:
    return stream.isatty() and os.environ.get("TERM") != "dumb"
