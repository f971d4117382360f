#!/usr/bin/env python3
"""Dispatch overhead of parallux against ``xargs -P`` and GNU ``parallel``, all measured in the same run.

What is measured
----------------
**Throughput (default mode).** Wall time, seen from outside, to run N trivial commands (``true``) with at most
P at once, every command getting its own work dir with its command, stdout and stderr files:

* ``parallux`` -- the real CLI in a subprocess (``parallux -q CONFIG -- n=N p=P ws=DIR``) on a generated config:
  one local runner with ``max_jobs=P``, ``setParallel(P)``, N ``goal.schd("true", work_relpath=I)``, then
  ``goal.issue().sync()``. Each work dir holds ``command.txt``, ``stdout.txt``, ``stderr.txt`` and parallux's
  ``result.json``. The time includes the CLI's start-up (reported separately, see below).
* ``xargs`` -- ``seq N | xargs -P P -n 1 sh -c SNIPPET DIR``; the snippet creates ``DIR/I``, writes
  ``command.txt`` and runs ``true`` with stdout/stderr redirected into ``stdout.txt``/``stderr.txt`` there.
  Note that the snippet execs ``/bin/mkdir`` (one extra process per job), while parallux's launcher creates
  the dir in-process; both run ``true`` as the shell builtin of a ``sh -c``.
* ``parallux-q`` -- the same with ``-q --no-log``: no progress output and no run log. ``parallux`` itself runs
  with its progress lines (``--progress-interval 1``, as when not on a terminal) and its run log on, so the
  two rows show what reporting costs.
* ``parallel`` -- ``seq N | parallel -j P --results DIR/{#}/ true``: GNU parallel's per-job result dirs
  (``stdout``, ``stderr`` and ``seq`` files; it writes no command file).

Every tool runs ``--repeat`` times, the tools interleaved (xargs, parallel, parallux, xargs, ...) so that
drift of the machine hits all of them alike. Each run gets a fresh empty directory under ``--tmp``; the
file system is ``sync``ed before each run and nothing is deleted until the end, because deleting a tree
of thousands of files slows the file system for seconds afterwards. File creation is a large part of the
cost of a trivial job: on a disk it can make the figures noisy, so compare tools within one run, and use
``--tmp /dev/shm`` (tmpfs) to see dispatch overhead without the disk. The table gives the best and the
median seconds, commands/s of the best run, and the ratio ``best seconds / xargs best seconds`` (below 1:
faster than xargs).

**Start-up.** Wall time of ``parallux CONFIG`` on a config with one local runner and zero commands (median
and best of 10). This is a fixed cost inside every parallux figure above.

**Scale (``--scale``).** parallux alone at each of ``--scale-n`` sizes (default 1,000 and 100,000). For each
size: wall seconds of the best run (sizes under 10,000 run ``--repeat`` times, larger ones ``--scale-repeat``
times, default once), microseconds per command, and the peak RSS of the parallux process. The ratio line
compares the largest size with the smallest: per-command time (largest / smallest), both raw and with the
start-up median subtracted from both wall times (start-up is paid once, so it inflates the small run's
per-command figure). Because separate runs on a shared machine differ by tens of percent, each run of at
least ``2 * --window`` commands is also measured *inside* itself: ``first us/cmd`` and ``last us/cmd`` are the
per-command times over its first and last ``--window`` (1,000) commands, from the start/end times in their
``result.json`` records. A per-command cost that grows with the number of commands shows up there as
``last`` well above ``first``, whatever the noise between runs. parallux writes its run log into the
scratch dir (``XDG_STATE_HOME`` points there), so the benchmark leaves nothing behind.

How peak RSS is measured
------------------------
parallux is started with ``subprocess.Popen`` and reaped with ``os.wait4`` on its pid (what ``/usr/bin/time
-v`` does too). Linux reports in that rusage ``ru_maxrss`` = the maximum of the child's own peak and the peaks
of every descendant it reaped -- the launcher process and, through it, the ``sh`` commands. It is a maximum,
not a sum, so it is an upper bound on parallux's own peak. To tell the processes apart, a sampler thread also
reads ``VmHWM`` (each process's own high-water mark) from ``/proc/PID/status`` of parallux and of its direct
children (the launchers) every 0.1 s; the highest sample is reported as ``own`` (parallux) and
``launcher``. It can miss growth in the last 0.1 s before exit; ``RSS wait4`` is the authoritative bound.

Usage::

    .venv/bin/python bench/dispatch.py                 # N=1000, P=4, 3 repeats
    .venv/bin/python bench/dispatch.py --n 5000 --p 8 --json
    .venv/bin/python bench/dispatch.py --scale         # parallux at N=1000 and N=100000, plus start-up
    .venv/bin/python bench/dispatch.py --profile --n 2000 --p 4   # where a command's time goes: bench/layers.py
    .venv/bin/python bench/dispatch.py --profile --layers none --n 100000 --no-cprofile   # the engine alone
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import layers  # noqa: E402
DEFAULT_PARALLUX = HERE.parent / ".venv" / "bin" / "parallux"
SMALL_SCALE_N = 10_000  # in --scale, sizes below this run --repeat times, larger ones --scale-repeat times

RUN_CONFIG = layers.CONFIG  # (one config: the layers measure the same run as the table)

EMPTY_CONFIG = '''\
from parallux import goal

goal.setRunner(goal.local(workspace=goal.args["ws"]))
'''

XARGS_SNIPPET = ('d="$0/$1"; mkdir -p "$d" && echo true > "$d/command.txt" && '
                 'true > "$d/stdout.txt" 2> "$d/stderr.txt"')


# -- running one tool once ------------------------------------------------------------------------------------

@dataclass
class Run:
    seconds: float
    rss_wait4_kb: int | None = None     # max(own peak, reaped descendants' peaks), from os.wait4
    rss_own_kb: int | None = None       # parallux's own VmHWM, last sample
    rss_launcher_kb: int | None = None  # the launcher's own VmHWM, last sample


class BenchError(Exception):
    pass


def run_timed(argv: list[str], stdin: bytes | None = None, sample_rss: bool = False,
              env: dict[str, str] | None = None) -> Run:
    """Run argv to its end; wall time from spawn to reap. Raises if it fails."""
    stdin_file = tempfile.TemporaryFile()
    if stdin is not None:
        stdin_file.write(stdin)
        stdin_file.seek(0)
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdin=stdin_file, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    sampler = RssSampler(process.pid) if sample_rss else None
    stderr = process.stderr.read()  # type: ignore[union-attr]  # EOF only when every holder has exited
    _, status, rusage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for the reaped pid again
    stdin_file.close()
    if process.returncode != 0:
        raise BenchError(f"{argv[0]} exited with {process.returncode}: {stderr.decode(errors='replace')[-2000:]}")
    run = Run(seconds, rss_wait4_kb=rusage.ru_maxrss)
    if sampler is not None:
        sampler.stop()
        run.rss_own_kb, run.rss_launcher_kb = sampler.own_kb, sampler.children_kb
    return run


class RssSampler:
    """Polls VmHWM of a process and of its direct children until the process is gone."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.own_kb: int | None = None
        self.children_kb: int | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            own = vm_hwm_kb(self.pid)
            if own is None:
                return
            self.own_kb = max(self.own_kb or 0, own)
            for child in children_of(self.pid):
                kb = vm_hwm_kb(child)
                if kb is not None:
                    self.children_kb = max(self.children_kb or 0, kb)
            self._stopped.wait(self.interval)


def vm_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def children_of(pid: int) -> list[int]:
    pids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return pids


# -- the three tools ----------------------------------------------------------------------------------------

@dataclass
class Tool:
    name: str
    argv: list[str]
    stdin: bytes | None
    workspace: Path
    result_files: tuple[str, ...]
    env: dict[str, str] | None = None


def numbers(n: int, first: int) -> bytes:
    return "".join(f"{i}\n" for i in range(first, first + n)).encode()


def parallux_tool(parallux: str, config: Path, workspace: Path, n: int, p: int, reporting: bool = True) -> Tool:
    """``reporting``: progress lines (non-terminal mode, every second) and the run log, as a user gets them by
    default; without it ``-q --no-log``, to show what they cost."""
    options = ["--progress-interval", "1"] if reporting else ["-q", "--no-log"]
    argv = [parallux, *options, str(config), "--", f"n={n}", f"p={p}", f"ws={workspace}"]
    # the run log goes where it normally would, but inside the scratch dir, so the benchmark leaves nothing
    env = dict(os.environ, XDG_STATE_HOME=str(workspace.parent / "state"))
    return Tool("parallux" if reporting else "parallux-q", argv, None, workspace,
                ("command.txt", "stdout.txt", "stderr.txt", "result.json"), env)


def dict_replace(tool: Tool, **changes: object) -> Tool:
    for key, value in changes.items():
        setattr(tool, key, value)
    return tool


def xargs_tool(workspace: Path, n: int, p: int) -> Tool:
    argv = ["xargs", "-P", str(p), "-n", "1", "sh", "-c", XARGS_SNIPPET, str(workspace)]
    return Tool("xargs", argv, numbers(n, 0), workspace, ("command.txt", "stdout.txt", "stderr.txt"))


def parallel_tool(workspace: Path, n: int, p: int) -> Tool:
    # {#} is the job's sequence number (1..N); a --results template ending in / makes one dir per job
    argv = ["parallel", "--will-cite", "-j", str(p), "--results", f"{workspace}/{{#}}/", "true"]
    return Tool("parallel", argv, numbers(n, 0), workspace, ("stdout", "stderr", "seq"))


def check_outputs(tool: Tool, n: int, first: int) -> None:
    """Cheap sanity check: the first, middle and last job each left their files."""
    for index in sorted({first, first + n // 2, first + n - 1}):
        job_dir = tool.workspace / str(index)
        missing = [name for name in tool.result_files if not (job_dir / name).exists()]
        if missing:
            raise BenchError(f"{tool.name}: {job_dir} lacks {missing}")


def run_tool(tool: Tool, n: int, first: int, sample_rss: bool = False) -> Run:
    """One timed run in a fresh dir. The dir is kept until the whole benchmark ends: deleting a tree of
    thousands of files sets off file-system work that would slow whichever run comes next."""
    tool.workspace.mkdir(parents=True)
    os.sync()  # write back the previous run's files now, not during this run
    run = run_timed(tool.argv, tool.stdin, sample_rss, tool.env)
    check_outputs(tool, n, first)
    return run


# -- the modes ------------------------------------------------------------------------------------------------

@dataclass
class Summary:
    tool: str
    n: int
    p: int
    runs: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def bench_throughput(args: argparse.Namespace, scratch: Path) -> list[Summary]:
    config = scratch / "run_config.py"
    config.write_text(RUN_CONFIG)
    makers = {
        "xargs": lambda ws: xargs_tool(ws, args.n, args.p),
        "parallel": lambda ws: parallel_tool(ws, args.n, args.p),
        "parallux": lambda ws: parallux_tool(args.parallux, config, ws, args.n, args.p),
        "parallux-q": lambda ws: parallux_tool(args.parallux, config, ws, args.n, args.p, reporting=False),
    }
    for name in args.skip:
        makers.pop(name, None)
    if args.baseline:  # another parallux (an earlier checkout), same config and options, interleaved too
        makers["baseline"] = lambda ws: dict_replace(parallux_tool(args.baseline, config, ws, args.n, args.p),
                                                     name="baseline")
    summaries = {name: Summary(name, args.n, args.p) for name in makers}
    for repeat in range(args.repeat):
        for name, make in makers.items():
            first = 1 if name == "parallel" else 0
            run = run_tool(make(scratch / f"{name}-{repeat}"), args.n, first)
            summaries[name].runs.append(run.seconds)
            progress(f"{name} run {repeat + 1}/{args.repeat}: {run.seconds:.3f} s")
    return list(summaries.values())


def bench_startup(args: argparse.Namespace, scratch: Path, times: int = 10) -> dict[str, float]:
    config = scratch / "empty_config.py"
    config.write_text(EMPTY_CONFIG)
    workspace = scratch / "startup-ws"
    workspace.mkdir()
    env = dict(os.environ, XDG_STATE_HOME=str(scratch / "state"))
    parallux = [run_timed([args.parallux, "-q", str(config), "--", f"ws={workspace}"], env=env).seconds
                for _ in range(times)]
    python = [run_timed([sys.executable, "-c", "pass"]).seconds for _ in range(times)]
    return {"median": statistics.median(parallux), "best": min(parallux),
            "python_median": statistics.median(python), "runs": times}


@dataclass
class ScaleRow:
    n: int
    seconds: float
    rss_wait4_kb: int | None
    rss_own_kb: int | None
    rss_launcher_kb: int | None
    first_window_us: float | None = None  # per-command time over the first commands of the run
    last_window_us: float | None = None   # ... and over the last ones (from the completion records)

    @property
    def us_per_command(self) -> float:
        return self.seconds / self.n * 1e6


def bench_scale(args: argparse.Namespace, scratch: Path) -> list[ScaleRow]:
    config = scratch / "run_config.py"
    config.write_text(RUN_CONFIG)
    rows = []
    for n in args.scale_n:
        best: ScaleRow | None = None
        repeats = args.repeat if n < SMALL_SCALE_N else args.scale_repeat  # small runs: cheap and noisy
        for repeat in range(repeats):
            tool = parallux_tool(args.parallux, config, scratch / f"scale-{n}-{repeat}", n, args.p)
            run = run_tool(tool, n, 0, sample_rss=True)
            row = ScaleRow(n, run.seconds, run.rss_wait4_kb, run.rss_own_kb, run.rss_launcher_kb,
                           *window_times(tool.workspace, n, args.window))
            progress(f"parallux N={n} run {repeat + 1}/{repeats}: {run.seconds:.3f} s, "
                     f"peak RSS {kb_to_mb(run.rss_wait4_kb)} MB")
            best = row if best is None or row.seconds < best.seconds else best
        assert best is not None
        rows.append(best)
    return rows


def window_times(workspace: Path, n: int, window: int) -> tuple[float | None, float | None]:
    """Per-command time (us) over the first and the last ``window`` commands of one run, from the start
    and end times in their completion records. Both windows come from the same run, so machine noise
    between runs does not enter this comparison; a cost that grows with the number of commands would."""
    if n < 2 * window:
        return None, None

    def span(indices: range) -> float:
        records = [json.loads((workspace / str(i) / "result.json").read_text()) for i in indices]
        return (max(r["end"] for r in records) - min(r["start"] for r in records)) / len(records) * 1e6

    return span(range(window)), span(range(n - window, n))


def scale_ratios(rows: list[ScaleRow], startup: float) -> dict[str, float]:
    small, large = rows[0], rows[-1]

    def per_command(row: ScaleRow, fixed: float) -> float:
        return (row.seconds - fixed) / row.n

    windows = {}
    if large.first_window_us and large.last_window_us:
        windows["last_over_first_window"] = large.last_window_us / large.first_window_us
    return {"small_n": small.n, "large_n": large.n, **windows,
            "per_command_ratio": per_command(large, 0) / per_command(small, 0),
            "per_command_ratio_without_startup": per_command(large, startup) / per_command(small, startup)}


# -- output ---------------------------------------------------------------------------------------------------

def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def fmt_us(us: float | None) -> str:
    return "-" if us is None else f"{us:.0f}"


def kb_to_mb(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f}"


def print_throughput(summaries: list[Summary]) -> None:
    xargs_best = next(s.best for s in summaries if s.tool == "xargs")
    first = summaries[0]
    print(f"throughput: N={first.n} commands (true), P={first.p}, best of {len(first.runs)}")
    xargs_median = next(s.median for s in summaries if s.tool == "xargs")
    print(f"{'tool':<10} {'best s':>8} {'median s':>9} {'cmd/s':>8} {'vs xargs':>9} {'medians':>8}")
    for s in summaries:
        print(f"{s.tool:<10} {s.best:>8.3f} {s.median:>9.3f} {s.n / s.best:>8.0f} {s.best / xargs_best:>8.2f}x "
              f"{s.median / xargs_median:>7.2f}x")


def print_startup(startup: dict[str, float]) -> None:
    print(f"\nstart-up: parallux on a config with one local runner and no command, {startup['runs']} runs")
    print(f"  median {startup['median']:.3f} s, best {startup['best']:.3f} s "
          f"(plain `python -c pass`: median {startup['python_median']:.3f} s)")


def print_scale(rows: list[ScaleRow], ratios: dict[str, float], p: int) -> None:
    print(f"scale: parallux, P={p}")
    print(f"{'N':>8} {'seconds':>9} {'us/cmd':>8} {'RSS wait4 MB':>13} {'own MB':>7} {'launcher MB':>12} "
          f"{'first us/cmd':>13} {'last us/cmd':>12}")
    for r in rows:
        print(f"{r.n:>8} {r.seconds:>9.3f} {r.us_per_command:>8.0f} {kb_to_mb(r.rss_wait4_kb):>13} "
              f"{kb_to_mb(r.rss_own_kb):>7} {kb_to_mb(r.rss_launcher_kb):>12} "
              f"{fmt_us(r.first_window_us):>13} {fmt_us(r.last_window_us):>12}")
    print(f"per-command time ratio N={ratios['large_n']}/N={ratios['small_n']}: "
          f"{ratios['per_command_ratio']:.2f}x raw, "
          f"{ratios['per_command_ratio_without_startup']:.2f}x with start-up subtracted")
    if "last_over_first_window" in ratios:
        print(f"inside the N={ratios['large_n']} run: last / first commands' per-command time "
              f"{ratios['last_over_first_window']:.2f}x")


# -- main -----------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Read the module docstring for what each figure means.")
    parser.add_argument("--n", type=int, default=1000, help="commands per run (default 1000)")
    parser.add_argument("--p", type=int, default=4, help="commands at once (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; best and median (default 3)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--scale", action="store_true", help="parallux at --scale-n sizes, with peak RSS")
    parser.add_argument("--scale-n", type=lambda s: [int(x) for x in s.split(",")], default=[1000, 100000],
                        help="comma-separated sizes for --scale (default 1000,100000)")
    parser.add_argument("--window", type=int, default=1000,
                        help="in --scale, compare the first and last this many commands of a run (default 1000)")
    parser.add_argument("--scale-repeat", type=int, default=1,
                        help="runs per size of 10,000 or more in --scale; best (default 1)")
    parser.add_argument("--parallux", default=shutil.which("parallux") or str(DEFAULT_PARALLUX),
                        help="the parallux executable (default: on PATH, else the repo's .venv)")
    parser.add_argument("--tmp", default=None, help="directory for the scratch dirs (default: the system's)")
    parser.add_argument("--skip", type=lambda s: s.split(","), default=[],
                        help="tools left out of the throughput mode, comma-separated (e.g. parallel: ~3x slower)")
    parser.add_argument("--baseline", default=None,
                        help="another parallux executable (an earlier version) run as one more tool, 'baseline'")
    layers.add_arguments(parser)
    return parser.parse_args(argv)


def source_version() -> str:
    """The commit of the checkout this script lives in (``+dirty`` with uncommitted changes), best effort."""
    try:
        commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE.parent), "status", "--porcelain", "--", "parallux"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def compile_package(python: str) -> None:
    """Byte-compile the parallux that ``python`` imports, as ``scripts/setup`` does at install. A checkout
    edited since then has stale ``.pyc`` files, and where ``PYTHONDONTWRITEBYTECODE`` is set every run would
    recompile them (~10 ms per changed module), which a user's installed copy never does."""
    subprocess.run([python, "-c", "import compileall, os, parallux; "
                    "compileall.compile_dir(os.path.dirname(parallux.__file__), quiet=1)"],
                   check=True, stdout=subprocess.DEVNULL)


def interpreter_of(script: str) -> str:
    """The Python a console script runs with (its ``#!`` line), else this one."""
    try:
        with open(script, "rb") as f:
            first = f.readline().decode("utf-8", "replace").strip()
    except OSError:
        return sys.executable
    return first[2:].split()[0] if first.startswith("#!") and "python" in first else sys.executable


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    compile_package(interpreter_of(args.parallux))
    if args.baseline:
        args.baseline = os.path.abspath(args.baseline)
    report: dict[str, object] = {"p": args.p, "cpus": os.cpu_count(), "load_before": os.getloadavg()[0],
                                 "parallux_source": source_version()}
    with tempfile.TemporaryDirectory(prefix="parallux-bench-", dir=args.tmp) as tmp:
        scratch = Path(tmp)
        report["scratch"] = tmp
        if args.profile:  # (its own start-up figures, measured the same way as its layers)
            report["layers"] = layers.main(args, scratch, interpreter_of(args.parallux))
            if args.json:
                print(json.dumps(report, indent=1))
            return 0
        try:
            startup = bench_startup(args, scratch)
            report["startup"] = startup
            if args.scale:
                rows = bench_scale(args, scratch)
                ratios = scale_ratios(rows, startup["median"])
                report["scale"] = {"rows": [dict(asdict(r), us_per_command=r.us_per_command) for r in rows],
                                   **ratios}
            else:
                summaries = bench_throughput(args, scratch)
                report["throughput"] = [{"tool": s.tool, "n": s.n, "best": s.best, "median": s.median, "runs": s.runs,
                                         "commands_per_second": s.n / s.best} for s in summaries]
        except BenchError as exc:
            print(f"dispatch.py: {exc}", file=sys.stderr)
            return 1
    report["load_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"parallux source: {report['parallux_source']}; scratch dir: {report['scratch']}; {report['cpus']} CPUs; "
          f"1-min load average "
          f"{report['load_before']:.2f} before, {report['load_after']:.2f} after (other work skews the figures)")
    if args.scale:
        print_scale(rows, ratios, args.p)
    else:
        print_throughput(summaries)
    print_startup(startup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
