"""The live display on a terminal: counts, elapsed time, ETA and the commands running now, redrawn in place.

Only this module imports ``rich``, and ``_session`` imports this module only when stderr is a terminal, so a run
into a pipe or a log file never pays for rich.

Threads. The engine thread only *records* (a start time per command, a queue of failures): it never calls
rich, so a slow terminal can never slow dispatch. One ticker thread does all the drawing: it prints queued
failures above the live area and redraws the live area ~5 times a second. The main thread (the config) prints
through rich's ``FileProxy`` on ``sys.stdout`` / ``sys.stderr``; the console's lock and Live's lock serialise
those writes with the ticker's redraws -- the same arrangement as rich's own auto-refresh thread.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import defaultdict, deque
from typing import Any, Callable, Sequence

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from ._handles import Command, Result
from ._printable import printable
from ._status import FAILED_STATUSES
from ._progress import FailureDigest, Progress, format_seconds, quarantine_notice, transfer_line
from ._transfer import SHOWN_AFTER

REFRESH_SECONDS = 0.2
SHOWN_PER_RUNNER = 3
SHOWN_IN_TOTAL = 12   # commands shown, over all runners
SHOWN_RUNNERS = 12    # runner lines, idle ones included


class LiveReporter:
    """A rich ``Live`` display on stderr, fed by a :class:`Progress`; failures scroll by above it."""

    def __init__(self, progress: Progress, pool: Callable[[], Sequence[tuple[str, str]]] = tuple) -> None:
        self.progress = progress
        self.pool = pool  # (name, "idle" / "quarantined" / ...) of the pool's runners: each gets a line
        self._since: dict[int, float] = {}        # seq -> monotonic start; written by the engine thread only
        self._failures: deque[tuple[str, Command, Result]] = deque()  # from the engine thread, for the ticker
        self._digest = FailureDigest()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.console = Console(
            file=sys.stderr, highlight=False, markup=False, emoji=False,
            soft_wrap=True,  # the config's long lines are left to the terminal to wrap, not broken by rich
            no_color=os.environ.get("NO_COLOR", "") != "",  # https://no-color.org: set and not empty
        )
        # stdout goes through the console only when it is a terminal too: `parallux cfg.py > out` keeps the
        # config's prints in out, not diverted to stderr.
        self.live = Live(console=self.console, auto_refresh=False, redirect_stderr=True,
                         redirect_stdout=sys.stdout.isatty(), get_renderable=self.render)
        progress.listeners.append(self.on_event)

    # -- engine thread ---------------------------------------------------------------------------------------

    def on_event(self, event: str, command: Command, **details: Any) -> None:
        if event == "started":
            self._since[command.seq] = time.monotonic()
        elif event in ("finished", "retrying"):
            self._since.pop(command.seq, None)
            result: Result | None = details.get("result")
            if event == "finished" and result is not None and result.status in FAILED_STATUSES:
                self._failures.append((event, command, result))  # described later, off this thread: it reads
                # the stderr file
        elif event == "quarantined":
            self._failures.append((event, command, details["result"]))
        elif event == "notice":
            self._failures.append((event, command, details["text"]))

    # -- main thread -----------------------------------------------------------------------------------------

    def start(self) -> None:
        self.live.start(refresh=True)
        self._thread = threading.Thread(target=self._tick, name="parallux-live", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Draw the final counts, then give the terminal back: cursor shown, stdio restored. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._halt.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._print_failures()
        finally:
            self.live.stop()  # final refresh, newline below the display, cursor shown, sys.std* restored

    # -- ticker thread ---------------------------------------------------------------------------------------

    def _tick(self) -> None:
        while not self._halt.wait(REFRESH_SECONDS):
            self._print_failures()
            self.live.refresh()

    def _print_failures(self) -> None:
        while self._failures:
            event, command, result = self._failures.popleft()
            text = Text("parallux: ")
            if event == "notice":
                text.append(str(result), style="dim")
            elif event == "quarantined":
                assert result.runner is not None
                text.append(quarantine_notice(result.runner.name, result.runner.quarantined, result),
                            style="bold yellow")
            elif (shown := self._digest.text(result)) is None:
                continue
            elif shown[0] == "failed":
                text.append("FAILED", style="bold red")
                text.append(" " + shown[1])
            else:
                text.append(shown[1], style="dim")
            self.console.print(text)

    # -- drawing (ticker thread, or main thread once the ticker has stopped) --------------------------------

    def render(self) -> Group:
        progress = self.progress
        with progress.lock:
            timed_out = progress.statuses["timeout"]
            failed, running, queued = progress.failure_count - timed_out, progress.running, progress.queued
            done, cancelled = progress.statuses["ok"], progress.statuses["cancelled"]
            elapsed, eta = progress.elapsed, progress.eta()
            commands = list(progress.running_now.values())
            transfers = [t for t in progress.transfers if t._seconds >= SHOWN_AFTER]
        lines = [counts_line(done, running, failed, timed_out, queued, cancelled, elapsed, eta)]
        if not self._stopped:
            lines += [Text(f"  {transfer_line(t)}", style="cyan", no_wrap=True, overflow="ellipsis")
                      for t in transfers]
            lines += self._running_lines(commands)
        return Group(*lines)

    def _running_lines(self, commands: list[Command]) -> list[Text]:
        now = time.monotonic()
        by_runner: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for command in commands:
            ran = now - self._since.get(command.seq, now)
            name = command.name if command.repetition is None else f"{command.name} {command.repetition}"
            by_runner[command.runner_name or "?"].append((ran, name))
        lines: list[Text] = []
        shown = 0
        states = dict(self.pool())
        runners = [*states, *sorted(set(by_runner) - set(states))]  # then others, running pinned commands
        for index, runner in enumerate(runners):
            if shown >= SHOWN_IN_TOTAL or len(lines) >= SHOWN_RUNNERS:
                rest = sum(len(by_runner[r]) for r in runners[index:])
                others = len(runners) - index
                plural = "s" if others > 1 else ""
                lines.append(Text(f"  +{rest} more on {others} other runner{plural}" if rest else
                                  f"  +{others} other runner{plural}, idle", style="dim"))
                break
            longest_first = sorted(by_runner[runner], reverse=True)
            visible = longest_first[:min(SHOWN_PER_RUNNER, SHOWN_IN_TOTAL - shown)]
            shown += len(visible)
            lines.append(runner_line(runner, visible, len(longest_first) - len(visible), states.get(runner, "idle")))
        return lines


def counts_line(done: int, running: int, failed: int, timed_out: int, queued: int, cancelled: int,
                elapsed: float, eta: float | None) -> Text:
    line = Text("parallux  ", style="bold", no_wrap=True, overflow="ellipsis")
    line.append(f"{done} done", style="green")
    line.append("  ")
    line.append(f"{running} running", style="cyan")
    line.append("  ")
    line.append(f"{failed} failed", style="bold red" if failed else "")
    if timed_out:  # apart from "failed": a command that hangs is another problem than one that crashes
        line.append("  ")
        line.append(f"{timed_out} timed out", style="bold red")
    line.append("  ")
    line.append(f"{queued} queued", style="yellow")
    if cancelled:  # only after a Ctrl-C or a halt; not "done", which would read as success
        line.append(f"  {cancelled} cancelled", style="magenta")
    line.append(f"   {format_seconds(elapsed)} elapsed", style="dim")
    if eta is not None:
        line.append(f", ETA {format_seconds(eta)}", style="dim")
    return line


def runner_line(runner: str, commands: list[tuple[float, str]], hidden: int, idle: str = "idle") -> Text:
    line = Text("  ", no_wrap=True, overflow="ellipsis")
    line.append(printable(runner), style="bold cyan")
    if not commands:
        line.append(f"  {idle}", style="dim" if idle == "idle" else "yellow")
    for index, (ran, name) in enumerate(commands):
        line.append("  " if index == 0 else ", ")
        line.append(printable(name))  # rich passes a name's escape sequences to the terminal
        line.append(f" {format_seconds(ran)}", style="dim")
    if hidden:
        line.append(f"  +{hidden} more", style="dim")
    return line
