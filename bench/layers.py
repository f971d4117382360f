"""``bench/dispatch.py --profile``: where a command's time goes, layer by layer.

The same config as the throughput mode (N ``true`` commands, P at once, progress and run log on) runs under
``bench/probe.py`` -- parallux's CLI in-process, its local launcher started through the probe too -- in three
*layers*, interleaved ``--repeat`` times:

* ``none``  -- ``PARALLUX_BENCH_SPAWN=none``: the launcher answers each run request at once, as a command that
  exited 0, and touches nothing: the config's thread, the engine, the run log and progress, the protocol both
  ways and the launcher's loop. No process, no file.
* ``files`` -- ``PARALLUX_BENCH_SPAWN=files``: the same plus everything the launcher does in the work dir: the
  directory made (no link followed), its lock, ``command.txt``, ``stdout.txt``, ``stderr.txt``, the record
  written aside and renamed. Still no process.
* ``full``  -- a real run: cgroups, the fork and exec of ``sh -c true``, the reap, the measures.

For each: wall seconds (min and median), microseconds per command with the start-up (the median of
``--repeat`` runs with no command, same probe) taken off, and the CPU time per command of the parallux
process (all its threads) and of the launcher (from ``getrusage`` in each, at its end). The differences
between layers are the cost of the files and of the process. Then, unless ``--no-cprofile``, one run of the
last layer under cProfile (every thread of parallux, and the launcher): the functions by own time, and each
stage's cumulative time per command. cProfile slows Python code down two to three times, system calls not
at all: read its figures as shares, the layers' for the time.

``PARALLUX_BENCH_SPAWN`` is for benchmarking only (see docs/design.md, "Where a command's time goes"); it is
passed to parallux in its environment and reaches the launcher in its hello.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROBE = HERE / "probe.py"
LAYERS = ("none", "files", "full")
PACKAGE_ROOT = [""]  # the directory holding the measured parallux package (see package_root)
# (label, where the function is, its name): the stages of a command, in its order, for the cProfile table
PARALLUX_STAGES = [
    ("schd() in the config", "_goal.py", "schd"),
    ("the group submitted", "_engine/_lifecycle.py", "submit"),
    ("scheduling passes", "_scheduler.py", "schedule"),
    ("start: slots, launch", "_engine/_lifecycle.py", "start"),
    ("  the request built and sent", "_engine/_seat.py", "launch"),
    ("    written to the pipe", "_protocol.py", "post"),
    ("events read and parsed", "_protocol.py", "_read_loop"),
    ("a timeout's task", "_engine/_lifecycle.py", "_deadline"),
    ("  its result", "_engine/_seat.py", "result_of"),
    ("  finished: result stored, waiters", "_engine/_lifecycle.py", "finish"),
    ("observers (log, progress)", "_engine/_observers.py", "observe"),
    ("  run log records", "_runlog.py", "__call__"),
    ("  run log flushes", "_runlog.py", "flush"),
    ("  progress", "_progress.py", "__call__"),
]
LAUNCHER_STAGES = [
    ("requests read and parsed", "_launcher.py", "read_requests"),
    ("run request", "_launcher.py", "run"),
    ("  work dir made, locked", "_launcher.py", "prepare_work_dir"),
    ("  command.txt, stdout, stderr", "_launcher.py", "write_files"),
    ("  cgroups before the fork", "_launcher.py", "cgroups_of_new_command"),
    ("  fork and exec", "_launcher.py", "fast_spawn"),
    ("  cgroups after the fork", "_launcher.py", "command_born"),
    ("reap (wait4)", "_launcher.py", "reap"),
    ("  finish: measures, record, event", "_launcher.py", "finish"),
    ("    record written", "_launcher.py", "write_record"),
    ("events written", "_launcher.py", "flush"),
    ("waiting (select)", "selectors.py", "select"),
]

CONFIG = '''\
from parallux import goal

n, p, ws = int(goal.args["n"]), int(goal.args["p"]), goal.args["ws"]
goal.setRunner(goal.local(workspace=ws, max_jobs=p))
goal.setParallel(p)
for index in range(n):
    goal.schd("true", work_relpath=str(index))
goal.issue().sync()
'''


@dataclass
class Probe:
    seconds: float
    parallux_cpu: float  # seconds, user + system, every thread
    launcher_cpu: float


@dataclass
class Layer:
    name: str
    runs: list[Probe] = field(default_factory=list)

    def wall(self) -> list[float]:
        return [r.seconds for r in self.runs]


def package_root(parallux: str) -> str:
    """Where the given parallux executable imports its package from (its ``--version`` says), so that the
    probe, run with the same interpreter, measures that copy of parallux and not another."""
    said = subprocess.run([parallux, "--version"], capture_output=True, text=True, check=True).stdout
    return os.path.dirname(said.split("(", 1)[1].split(")", 1)[0])


def probe_run(python: str, prefix: Path, argv: list[str], layer: str, state: Path,
              profile: bool = False) -> Probe:
    env = dict(os.environ, XDG_STATE_HOME=str(state), PYTHONPATH=PACKAGE_ROOT[0])
    env.pop("PARALLUX_BENCH_SPAWN", None)
    if layer != "full":
        env["PARALLUX_BENCH_SPAWN"] = layer
    command = [python, str(PROBE), str(prefix), *(["--profile"] if profile else []), "--", *argv]
    os.sync()
    start = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"probe run failed ({done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}")
    own = json.loads(Path(f"{prefix}.parallux.json").read_text())
    launchers = [json.loads(Path(p).read_text()) for p in glob.glob(f"{prefix}.launcher.*.json")]
    return Probe(seconds, own["user"] + own["system"], sum(l["user"] + l["system"] for l in launchers))


def run_layers(args: argparse.Namespace, scratch: Path, python: str) -> tuple[dict[str, Layer], Layer]:
    config = scratch / "layers_config.py"
    config.write_text(CONFIG)
    layers = {name: Layer(name) for name in args.layers}
    startup = Layer("start-up")
    for repeat in range(args.repeat):
        for name in ["start-up", *args.layers]:
            n = 0 if name == "start-up" else args.n
            workspace = scratch / f"layer-{name}-{repeat}"
            argv = ["--progress-interval", "1", str(config), "--", f"n={n}", f"p={args.p}", f"ws={workspace}"]
            probe = probe_run(python, scratch / f"probe-{name}-{repeat}", argv,
                              "none" if name == "start-up" else name, scratch / "state")
            (startup if name == "start-up" else layers[name]).runs.append(probe)
            print(f"  .. {name} run {repeat + 1}/{args.repeat}: {probe.seconds:.3f} s", file=sys.stderr, flush=True)
    return layers, startup


def cprofile_run(args: argparse.Namespace, scratch: Path, python: str, layer: str) -> tuple[str, str]:
    config = scratch / "layers_config.py"
    workspace = scratch / f"cprofile-{layer}"
    argv = ["--progress-interval", "1", str(config), "--", f"n={args.n}", f"p={args.p}", f"ws={workspace}"]
    prefix = scratch / f"cprofile-{layer}"
    probe_run(python, prefix, argv, layer, scratch / "state", profile=True)
    return f"{prefix}.parallux.pstats", glob.glob(f"{prefix}.launcher.*.pstats")[0]


def stage_table(path: str, stages: list[tuple[str, str, str]], n: int) -> list[tuple[str, float, int]]:
    """Each stage's cumulative time per command (us) and its calls, from a cProfile dump."""
    stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
    rows = []
    for label, where, name in stages:
        cumulative, calls = 0.0, 0
        for (filename, _, function), (_, ncalls, _, cum, _) in stats.items():
            if function == name and filename.endswith(where):
                cumulative += cum
                calls += ncalls
        rows.append((label, cumulative / n * 1e6, calls))
    return rows


def top_functions(path: str, count: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(count)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return "\n".join(lines[start:start + count + 1])


def report(args: argparse.Namespace, layers: dict[str, Layer], startup: Layer) -> dict[str, object]:
    base = statistics.median(startup.wall())
    base_cpu = statistics.median(r.parallux_cpu for r in startup.runs)
    base_launcher = statistics.median(r.launcher_cpu for r in startup.runs)
    n = args.n
    print(f"layers: N={n} x true, P={args.p}, {args.repeat} runs each, interleaved; start-up (no command) "
          f"median {base:.3f} s, taken off the per-command figures")
    print(f"{'layer':<7} {'best s':>8} {'median s':>9} {'us/cmd best':>12} {'us/cmd median':>14} "
          f"{'parallux CPU us/cmd':>20} {'launcher CPU us/cmd':>20}")
    figures: dict[str, object] = {"n": n, "p": args.p, "startup_median": base}
    for layer in layers.values():
        wall = layer.wall()
        best, median = (min(wall) - base) / n * 1e6, (statistics.median(wall) - base) / n * 1e6
        own = (statistics.median(r.parallux_cpu for r in layer.runs) - base_cpu) / n * 1e6
        launcher = (statistics.median(r.launcher_cpu for r in layer.runs) - base_launcher) / n * 1e6
        print(f"{layer.name:<7} {min(wall):>8.3f} {statistics.median(wall):>9.3f} {best:>12.1f} {median:>14.1f} "
              f"{own:>20.1f} {launcher:>20.1f}")
        figures[layer.name] = {"runs": wall, "us_per_command_best": best, "us_per_command_median": median,
                               "parallux_cpu_us": own, "launcher_cpu_us": launcher}
    names = list(layers)
    for lower, upper in zip(names, names[1:]):
        a, b = figures[lower], figures[upper]
        assert isinstance(a, dict) and isinstance(b, dict)
        print(f"  {upper} - {lower}: {b['us_per_command_median'] - a['us_per_command_median']:+.1f} us/cmd wall "
              f"(medians), launcher CPU {b['launcher_cpu_us'] - a['launcher_cpu_us']:+.1f} us/cmd, parallux CPU "
              f"{b['parallux_cpu_us'] - a['parallux_cpu_us']:+.1f} us/cmd")
    return figures


def print_profile(parallux: str, launcher: str, n: int, layer: str, top: int) -> None:
    print(f"\ncProfile of one '{layer}' run (slowed down by the profiler: shares, not times), "
          "cumulative us per command:")
    for title, path, stages in (("parallux (every thread)", parallux, PARALLUX_STAGES),
                                ("launcher", launcher, LAUNCHER_STAGES)):
        print(f"  {title}")
        for label, us, calls in stage_table(path, stages, n):
            print(f"    {label:<38} {us:>9.1f}  ({calls} calls)")
    for title, path in (("parallux", parallux), ("launcher", launcher)):
        print(f"\n{title}: the {top} functions with the most own time")
        print(top_functions(path, top))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", action="store_true",
                        help="where a command's time goes: the layers none/files/full and a cProfile (see "
                             "bench/layers.py)")
    parser.add_argument("--layers", type=lambda s: s.split(","), default=list(LAYERS),
                        help="with --profile: which layers, comma-separated (default none,files,full)")
    parser.add_argument("--no-cprofile", action="store_true", help="with --profile: no cProfile run")
    parser.add_argument("--top", type=int, default=25, help="with --profile: functions listed (default 25)")


def main(args: argparse.Namespace, scratch: Path, python: str) -> dict[str, object]:
    unknown = set(args.layers) - set(LAYERS)
    if unknown:
        raise SystemExit(f"unknown layer(s) {sorted(unknown)}: choose among {', '.join(LAYERS)}")
    PACKAGE_ROOT[0] = package_root(args.parallux)
    print(f"layers of the parallux in {PACKAGE_ROOT[0]}", file=sys.stderr)
    layers, startup = run_layers(args, scratch, python)
    figures = report(args, layers, startup)
    if not args.no_cprofile:
        last = args.layers[-1]
        parallux, launcher = cprofile_run(args, scratch, python, last)
        print_profile(parallux, launcher, args.n, last, args.top)
    return figures
