#!/usr/bin/env python3
"""How fast are the views of a big benchmark campaign? ``parallux show`` and ``compare`` on synthetic runs of
10,000 benchmarks x 10 repetitions (and a warm-up each: 110,000 executions, 330,000 lines a log), the report
of one, and its rendering in headless Chromium.

    .venv/bin/python bench/stats.py                       # 10,000 benchmarks x 10, 3 repetitions
    .venv/bin/python bench/stats.py --benchmarks 2000 --repeat 1

The logs (``tests/synthetic.py``: ``write_benchmark_log``, one metric each, 2% noise; in run B one benchmark in
a hundred 10% slower) are written to a scratch directory, and every command runs the real CLI in a
subprocess, so the figures include Python's start-up and the imports (scipy's, for compare), as a user sees
them (and the CPU time they took, steadier on a shared machine). The browser figure is the time from navigation until the page says it has drawn everything. Targets
(issue 20): show, compare and the report's opening within 3 s each.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import READY  # noqa: E402
from tests.synthetic import write_benchmark_log  # noqa: E402


def timed_cli(*args: str, cwd: Path) -> tuple[float, float]:
    """The wall time and the CPU time (user + system, its children's included: compare reads run B in a
    child) of one parallux command. On a machine shared with other work the CPU time is the steadier."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    begin = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "parallux", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env=dict(os.environ, HOME=str(cwd)))
    elapsed = time.perf_counter() - begin
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"parallux {' '.join(args)} failed: {done.stderr}")
    return elapsed, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def campaign(count: int, repetitions: int, seed: int, slower: float = 1.0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    benchmarks = []
    for index in range(count):
        factor = slower if index % 100 == 0 else 1.0
        base = (0.5 + (index % 97) / 50) * factor
        times = [base * rng.lognormvariate(0.0, 0.02) for _ in range(repetitions)]
        benchmarks.append({"key": f"suite/{index:05d}", "name": f"kernel{index:05d}", "wall": times,
                           "metrics": {"gflops": [100 / t for t in times]}, "warmup": 1})
    return benchmarks


def open_in_browser(report: Path, repeat: int) -> list[float]:
    from tests.browser import Chromium
    figures = []
    with Chromium(width=1400, height=1150) as browser:
        for _ in range(repeat):
            figures.append(browser.load(report.as_uri(), READY, timeout=180))
            errors = browser.console_errors() + browser.evaluate("__parallux_report.errors")
            if errors:
                raise SystemExit(f"the report has errors: {errors}")
            if browser.evaluate("__parallux_report.benchmarks.points_drawn") == 0:
                raise SystemExit("the report drew no benchmark")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmarks", type=int, default=10_000)
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="times each figure is measured (default 3)")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="parallux-bench-stats-") as scratch:
        cwd = Path(scratch)
        a, b = cwd / "a.jsonl", cwd / "b.jsonl"
        begin = time.perf_counter()
        write_benchmark_log(a, campaign(args.benchmarks, args.repetitions, 1), max_jobs=32,
                            run_id="20240301-101500-aaaaaa")
        write_benchmark_log(b, campaign(args.benchmarks, args.repetitions, 2, slower=1.1), max_jobs=32,
                            run_id="20240302-101500-bbbbbb")
        print(f"run logs: {args.benchmarks} benchmarks x {args.repetitions} repetitions (+1 warm-up), "
              f"{a.stat().st_size / 1e6:.0f} MB each, written in {time.perf_counter() - begin:.0f} s")
        cases = {"show": ["show", str(a)], "show --metric gflops": ["show", str(a), "--metric", "gflops"],
                 "show --format json": ["show", str(a), "--format", "json"],
                 "compare": ["compare", str(a), str(b)],
                 "compare --metric gflops": ["compare", str(a), str(b), "--metric", "gflops", "--higher-is-better"],
                 "report": ["report", str(a), "-o", str(cwd / "report.html")]}
        for label, command in cases.items():
            figures = [timed_cli(*command, cwd=cwd) for _ in range(args.repeat)]
            times, cpu = [f[0] for f in figures], [f[1] for f in figures]
            print(f"parallux {label:<24} median {statistics.median(times):6.2f} s   "
                  f"(min {min(times):.2f}, max {max(times):.2f}; CPU median {statistics.median(cpu):.2f} s)")
        print(f"report.html: {(cwd / 'report.html').stat().st_size / 1e6:.1f} MB")
        if not args.no_browser:
            loads = open_in_browser(cwd / "report.html", args.repeat)
            print(f"chromium: loaded and drawn    median {statistics.median(loads):6.2f} s   "
                  f"(min {min(loads):.2f}, max {max(loads):.2f})")


if __name__ == "__main__":
    main()
