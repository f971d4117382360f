#!/usr/bin/env python3
"""How fast are the views of a big run? ``parallux show``, ``report`` and ``export`` on a synthetic run log,
and the report's rendering in headless Chromium.

    .venv/bin/python bench/report.py                  # 100,000 commands, 3 repetitions
    .venv/bin/python bench/report.py --commands 20000 --repeat 1
    .venv/bin/python bench/report.py --commands 1500 --small-pool --repeat 1 --screenshot docs/report.png

The log (``tests/synthetic.py``: four runners, one with a 64-core pool, ~2% failures, some retried) is
written to a scratch directory, and every command runs the real CLI in a subprocess, so the figures include
Python's start-up and the imports, as a user sees them. The browser figure is the time from navigation until
the page says it has drawn everything (``window.__parallux_report.ready``), and ``render_ms`` is the page's
own ``performance.now()`` at that moment. Targets (issue 13): show and report within 3 s each, rendering
within 3 s, for 100,000 commands.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.synthetic import SMALL_RUNNERS, write_synthetic_log  # noqa: E402

READY = "window.__parallux_report && (window.__parallux_report.ready || window.__parallux_report.errors.length)"


def timed_cli(*args: str, cwd: Path) -> float:
    begin = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "parallux", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env=dict(os.environ, HOME=str(cwd)))
    elapsed = time.perf_counter() - begin
    if done.returncode != 0:
        raise SystemExit(f"parallux {' '.join(args)} failed: {done.stderr}")
    return elapsed


def render_in_browser(report: Path, repeat: int, screenshot: Path | None) -> list[tuple[float, float]]:
    from tests.browser import Chromium
    figures = []
    with Chromium(width=1400, height=1150) as browser:
        for _ in range(repeat):
            seconds = browser.load(report.as_uri(), READY, timeout=120)
            errors = browser.console_errors() + browser.evaluate("__parallux_report.errors")
            if errors:
                raise SystemExit(f"the report has errors: {errors}")
            figures.append((seconds, browser.evaluate("__parallux_report.render_ms") / 1000))
        if screenshot is not None:
            browser.screenshot(screenshot, full_page=False)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--screenshot", type=Path, help="also save a screenshot of the report's first screen")
    parser.add_argument("--small-pool", action="store_true",
                        help="24 slots instead of 112 (the picture in docs/: lanes tall enough to see)")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="parallux-bench-report-") as scratch:
        cwd = Path(scratch)
        log = cwd / "run.jsonl"
        counts = write_synthetic_log(log, args.commands, runners=SMALL_RUNNERS if args.small_pool else None)
        print(f"run log: {args.commands} commands, {counts['attempts']} attempts, "
              f"{log.stat().st_size / 1e6:.1f} MB")
        cases = {"show": ["show", str(log)], "show --format json": ["show", str(log), "--format", "json"],
                 "report": ["report", str(log), "-o", str(cwd / "report.html")],
                 "export --trace": ["export", str(log), "--trace", str(cwd / "trace.json")],
                 "export --junit": ["export", str(log), "--junit", str(cwd / "junit.xml")]}
        for label, command in cases.items():
            times = [timed_cli(*command, cwd=cwd) for _ in range(args.repeat)]
            print(f"parallux {label:<20} median {statistics.median(times):6.2f} s   "
                  f"(min {min(times):.2f}, max {max(times):.2f})")
        print(f"report.html: {(cwd / 'report.html').stat().st_size / 1e6:.1f} MB")
        if not args.no_browser:
            figures = render_in_browser(cwd / "report.html", args.repeat, args.screenshot)
            loads = [f[0] for f in figures]
            pages = [f[1] for f in figures]
            print(f"chromium: loaded and drawn  median {statistics.median(loads):6.2f} s   "
                  f"(page's own clock: median {statistics.median(pages):.2f} s)")


if __name__ == "__main__":
    main()
