#!/usr/bin/env python3
"""A campaign of a million trivial commands on the local runner, and the views of its log (issue 24).

    .venv/bin/python bench/million.py                       # 1,000,000 commands, P=8, in /dev/shm
    .venv/bin/python bench/million.py --commands 100000     # a quick look
    .venv/bin/python bench/million.py --views-of LOG        # the views alone, of a log --keep-log kept

What is measured
----------------
* **The run.** ``parallux --progress-interval 10 CONFIG`` (progress lines and the run log on, as a user gets
  them when not on a terminal) on a config with one local runner (``max_jobs=P``, ``setParallel(P)``) that
  registers ``--commands`` ``goal.schd("true", work_relpath=I)`` and then ``goal.issue().sync()``. Wall
  time, and peak RSS: parallux's own (its ``VmHWM`` from ``/proc``, sampled every second: the kernel keeps
  the peak: only growth in the last second before the exit can be missed, which wait4 covers; the figure
  the target is about), its launcher's (the descendant running
  ``_launcher.py``, below its guardian), and ``ru_maxrss`` of ``wait4`` (the maximum over parallux and every
  process it reaped). The targets: it completes, parallux's peak RSS under 600 MB.
* **Per-command time, first and last.** From the run log's ``finished`` records: for the first and the last
  ``--window`` (10,000) commands by submission order, (latest end - earliest start) / window. Both come from
  the same run, so machine noise between runs does not enter the ratio; a per-command cost that grows with
  the commands done would. The target: last / first at most 1.2.
* **The views of that log.** Wall time and peak RSS (``wait4``) of ``parallux show LOG --slowest 10`` (target
  under 15 s) and ``parallux report LOG -o FILE`` (under 30 s, its file under 50 MB), then the report in
  headless Chromium: the time until the page says it has drawn (``__parallux_report.ready``), its console
  errors (target: none), and what it says it drew (lanes, bars, whether it aggregated).

Work dirs
---------
A command leaves a work dir with five entries (``command.txt``, ``stdout.txt``, ``stderr.txt``,
``result.json``, the run's lock): six inodes and two pages of tmpfs per command, 6 million inodes and ~10 GB
for a million -- more than ``/dev/shm`` holds here. So a pruner thread removes the work dir of command I
once command I + ``--lag`` has its ``result.json`` (I's own too), keeping about ``--lag`` dirs at any time.
That costs a few tens of microseconds of CPU per command, the same for every command, outside parallux.
``--keep-dirs`` keeps them all (for sizes the file system can hold).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.dispatch import DEFAULT_PARALLUX, RUN_CONFIG, compile_package, interpreter_of, vm_hwm_kb  # noqa: E402
from bench.dispatch import kb_to_mb, source_version  # noqa: E402
from bench.report import READY  # noqa: E402


class Sampler:
    """Polls the VmHWM (its own peak RSS) of parallux and of its launcher (a descendant running
    ``_launcher.py``, below its guardian) every second, until parallux is gone."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.own_kb = 0
        self.launcher_kb = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            own = vm_hwm_kb(self.pid)
            if own is None:
                return
            self.own_kb = max(self.own_kb, own)
            for pid in _descendants(self.pid):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        launcher = b"_launcher.py" in f.read()
                except OSError:
                    continue
                self.launcher_kb = max(self.launcher_kb, (vm_hwm_kb(pid) or 0) if launcher else 0)
            self._stopped.wait(1.0)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    children = [int(p) for p in f.read().split()]
                found += children
                todo += children
        except OSError:
            pass
    return found


class Pruner:
    """Removes finished commands' work dirs behind the run, in submission order, ``lag`` commands behind."""

    def __init__(self, workspace: Path, commands: int, lag: int) -> None:
        self.workspace, self.commands, self.lag = workspace, commands, lag
        self.removed = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _done(self, index: int) -> bool:
        return (self.workspace / str(index) / "result.json").exists()

    def _loop(self) -> None:
        index = 0
        while not self._stopped.is_set() and index + self.lag < self.commands:
            if self._done(index + self.lag) and self._done(index):
                shutil.rmtree(self.workspace / str(index), ignore_errors=True)
                self.removed += 1
                index += 1
            else:
                self._stopped.wait(0.05)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def run_campaign(args: argparse.Namespace, scratch: Path) -> dict[str, object]:
    config = scratch / "million_config.py"
    config.write_text(RUN_CONFIG)
    workspace = scratch / "ws"
    workspace.mkdir()
    env = dict(os.environ, XDG_STATE_HOME=str(scratch / "state"))
    log = scratch / "run.jsonl"
    argv = [args.parallux, "--progress-interval", "10", "--log", str(log), str(config), "--",
            f"n={args.commands}", f"p={args.p}", f"ws={workspace}"]
    stderr_path = scratch / "parallux-stderr.txt"
    with open(stderr_path, "wb") as stderr:
        begin = time.perf_counter()
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        sampler = Sampler(process.pid)
        pruner = None if args.keep_dirs else Pruner(workspace, args.commands, args.lag)
        _, status, rusage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - begin
        process.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
        if pruner is not None:
            pruner.stop()
    if process.returncode != 0:
        said = stderr_path.read_text(errors="replace")[-3000:]
        raise SystemExit(f"parallux exited with {process.returncode}:\n{said}")
    return {"seconds": seconds, "rss_wait4_kb": rusage.ru_maxrss, "rss_own_kb": sampler.own_kb,
            "rss_launcher_kb": sampler.launcher_kb, "log": str(log), "log_mb": log.stat().st_size / 1e6,
            "pruned": pruner.removed if pruner is not None else 0}


def window_times(log: Path, commands: int, window: int) -> tuple[float, float, int]:
    """Per-command microseconds over the first and last ``window`` commands (by seq), and how many commands
    the log says ended ``ok``."""
    first_seqs = range(1, window + 1)
    last_seqs = range(commands - window + 1, commands + 1)
    spans: dict[str, list[float]] = {"first": [float("inf"), 0.0], "last": [float("inf"), 0.0]}
    ok = 0
    with open(log, "rb") as f:
        for line in f:
            if b'"event":"finished"' not in line:
                continue
            record = json.loads(line)
            ok += record.get("status") == "ok"
            seq = record["seq"]
            which = "first" if seq in first_seqs else "last" if seq in last_seqs else None
            if which is not None:
                span = spans[which]
                span[0], span[1] = min(span[0], record["start"]), max(span[1], record["end"])
    return ((spans["first"][1] - spans["first"][0]) / window * 1e6,
            (spans["last"][1] - spans["last"][0]) / window * 1e6, ok)


def timed_view(args: argparse.Namespace, words: list[str], scratch: Path) -> dict[str, float]:
    begin = time.perf_counter()
    process = subprocess.Popen([args.parallux, *words], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=dict(os.environ, XDG_STATE_HOME=str(scratch / "state")))
    said = process.stderr.read()  # type: ignore[union-attr]
    _, status, rusage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - begin
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"parallux {' '.join(words)} exited with {process.returncode}: {said.decode()[-2000:]}")
    return {"seconds": seconds, "rss_kb": rusage.ru_maxrss, "cpu": rusage.ru_utime + rusage.ru_stime}


def open_in_browser(report: Path) -> dict[str, object]:
    from tests.browser import Chromium
    with Chromium(width=1400, height=1150) as browser:
        seconds = browser.load(report.as_uri(), READY, timeout=300)
        errors = browser.console_errors() + browser.evaluate("__parallux_report.errors")
        said = browser.evaluate("JSON.stringify({bars: __parallux_report.bars_drawn, "
                                "aggregated: __parallux_report.aggregated, counts: __parallux_report.data.run.counts})")
    return {"seconds": seconds, "errors": errors, "page": json.loads(said)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Read the module docstring for what each figure means.")
    parser.add_argument("--commands", type=int, default=1_000_000, help="commands in the run (default 1,000,000)")
    parser.add_argument("--p", type=int, default=8, help="max_jobs and setParallel (default 8)")
    parser.add_argument("--window", type=int, default=10_000,
                        help="compare the first and last this many commands (default 10,000)")
    parser.add_argument("--lag", type=int, default=2000, help="work dirs kept behind the run (default 2000)")
    parser.add_argument("--keep-dirs", action="store_true", help="keep every work dir (no pruning)")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--keep-log", metavar="PATH", help="copy the run log there (to look at it again later)")
    parser.add_argument("--run-only", action="store_true", help="the run and its figures, not the views")
    parser.add_argument("--views-of", metavar="LOG", help="no run: the views of this run log (one --keep-log kept)")
    parser.add_argument("--tmp", default="/dev/shm", help="where the scratch dir goes (default /dev/shm)")
    parser.add_argument("--parallux", default=str(DEFAULT_PARALLUX), help="the parallux executable")
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    compile_package(interpreter_of(args.parallux))
    say(f"parallux source {source_version()}; {args.commands} commands, P={args.p}, in {args.tmp}; "
        f"{os.cpu_count()} CPUs, 1-min load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="parallux-million-", dir=args.tmp) as tmp:
        scratch = Path(tmp)
        if args.views_of:
            views(args, Path(args.views_of), scratch)
            return 0
        run = run_campaign(args, scratch)
        say(f"run: {run['seconds']:.0f} s ({run['seconds'] / args.commands * 1e6:.0f} us/command); peak RSS: "
            f"parallux {kb_to_mb(run['rss_own_kb'])} MB, launcher {kb_to_mb(run['rss_launcher_kb'])} MB, "
            f"wait4 {kb_to_mb(run['rss_wait4_kb'])} MB; run log {run['log_mb']:.0f} MB")
        log = Path(str(run["log"]))
        window = min(args.window, args.commands // 2)
        first, last, ok = window_times(log, args.commands, window)
        say(f"per-command time: first {window} {first:.0f} us, last {window} {last:.0f} us: "
            f"last/first {last / first:.2f}x; {ok} commands ok")
        if args.keep_log:
            shutil.copyfile(log, args.keep_log)
        if args.run_only:
            return 0
        views(args, log, scratch)
        say(f"1-min load after: {os.getloadavg()[0]:.2f}")
    return 0


def views(args: argparse.Namespace, log: Path, scratch: Path) -> None:
    """``show --slowest 10`` and ``report`` of the log, timed, and the report in Chromium."""
    show = timed_view(args, ["show", str(log), "--slowest", "10"], scratch)
    say(f"show --slowest 10: {show['seconds']:.1f} s (CPU {show['cpu']:.1f} s), "
        f"peak RSS {kb_to_mb(int(show['rss_kb']))} MB")
    html = scratch / "report.html"
    report = timed_view(args, ["report", str(log), "-o", str(html)], scratch)
    say(f"report: {report['seconds']:.1f} s (CPU {report['cpu']:.1f} s), "
        f"peak RSS {kb_to_mb(int(report['rss_kb']))} MB, "
        f"file {html.stat().st_size / 1e6:.1f} MB")
    if not args.no_browser:
        page = open_in_browser(html)
        say(f"chromium: drawn in {page['seconds']:.1f} s, console errors: {page['errors'] or 'none'}; "
            f"page: {page['page']}")


if __name__ == "__main__":
    sys.exit(main())
