#!/usr/bin/env python3
"""N trivial commands over Slurm: parallux's Slurm runner against its local runner, one ``sbatch`` per
command and one job array, all in the same run, on the private three-node cluster of ``tests/slurm.py``.

What is measured
----------------
* ``parallux slurm`` -- the real CLI on a config with ``goal.slurm("cl", nodes=3, max_jobs=2)`` (3 nodes x 2
  slots = 6 at once): the config first runs one command there and syncs it (so the allocation has started
  and every node's launcher said hello), then registers N ``true`` commands, issues and syncs them. Two
  figures: ``dispatch`` (from the issue to the last result: what "once the allocation has started" means)
  and ``whole run`` (the CLI's wall time: sbatch, the pending allocation, launchers starting, scancel).
* ``parallux local`` -- the same config with ``goal.local(max_jobs=6)``: the reference for ``dispatch``.
* ``job array`` and ``sbatch per command`` -- ``bench/slurm_baselines.py``, at ``--array-n`` and
  ``--sbatch-n`` commands (each costs ~0.13 s per command here: compare the time per command).

    .venv/bin/python bench/slurm_dispatch.py [--n 2000] [--sbatch-n 200] [--array-n 500] [--repeat 1] [--tmp DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.slurm_baselines import job_array, sbatch_per_command  # noqa: E402
from tests.slurm import start_slurm  # noqa: E402

CONFIG = """
import time
from parallux import goal
n = int(goal.args["n"])
runner = {runner}
goal.setRunner(runner)
goal.run("true", work_relpath="warm/0").sync()
for i in range(n):
    goal.schd("true", work_relpath=f"c/{{i}}")
start = time.perf_counter()
goal.issue().sync()
print("dispatch", time.perf_counter() - start)
"""
RUNNERS = {"parallux slurm": 'goal.slurm("cl", nodes=3, max_jobs=2, workspace=goal.args["ws"])',
           "parallux local": 'goal.local(max_jobs=6, workspace=goal.args["ws"])'}


def parallux_run(name: str, env: dict[str, str], scratch: Path, n: int, index: int,
                 executable: str = str(REPO / ".venv" / "bin" / "parallux")) -> tuple[float, float]:
    config = scratch / f"{name.split()[1]}.py"
    config.write_text(CONFIG.format(runner=RUNNERS[name]))
    workspace = scratch / f"ws-{name.split()[1]}-{index}"
    start = time.perf_counter()
    done = subprocess.run([executable, "-q", "--no-log", str(config), "--",
                           f"n={n}", f"ws={workspace}"], env=env, capture_output=True, text=True, timeout=3600)
    whole = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr}")
    dispatch = float(next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("dispatch")))
    missing = [i for i in range(n) if not (workspace / "c" / str(i) / "result.json").exists()]
    if missing:
        raise SystemExit(f"{name}: {len(missing)} commands left no record")
    return dispatch, whole


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--sbatch-n", type=int, default=200, help="commands for sbatch per command (200)")
    parser.add_argument("--array-n", type=int, default=500, help="tasks of the job array (500)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each parallux row (the median is shown)")
    parser.add_argument("--parallux", default=str(REPO / ".venv" / "bin" / "parallux"),
                        help="the parallux executable (default: this checkout's .venv)")
    parser.add_argument("--rows", type=lambda s: s.split(","), default=["array", "sbatch"],
                        help="baselines to run beside parallux: array, sbatch, or none (default both)")
    parser.add_argument("--tmp", default=None, help="scratch dir for every row (default: a new temp dir in $TMPDIR; "
                        "/dev/shm takes the file system out of the figures)")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="plx-slurm-dispatch-", dir=args.tmp))
    cluster = start_slurm(scratch / "cluster", name="plxdisp")
    env = dict(cluster.env, HOME=str(scratch))
    env.pop("PYTHONPATH", None)
    rows: list[tuple[str, int, float, float | None]] = []
    try:
        cluster.wait_idle()
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in RUNNERS}
        for index in range(args.repeat):
            for name in RUNNERS:
                figures[name].append(parallux_run(name, env, scratch, args.n, index, args.parallux))
        for name, runs in figures.items():
            runs.sort()
            dispatch, whole = runs[len(runs) // 2]
            rows.append((name, args.n, dispatch, whole))
        if "array" in args.rows:
            rows.append(("job array", args.array_n, job_array(cluster, scratch / "array", args.array_n), None))
        if "sbatch" in args.rows:
            rows.append(("sbatch per command", args.sbatch_n,
                         sbatch_per_command(cluster, scratch / "sbatch", args.sbatch_n), None))
    finally:
        left = cluster.stop()
        if left:
            print(f"killed leftovers: {left}", file=sys.stderr)
    slurm_per_cmd = rows[0][2] / rows[0][1]
    print(f"{'':20} {'N':>6} {'seconds':>9} {'whole run':>10} {'ms/cmd':>8} {'per cmd / parallux slurm':>25}")
    for name, n, seconds, whole in rows:
        print(f"{name:20} {n:6d} {seconds:9.2f} {whole if whole is not None else float('nan'):10.2f} "
              f"{1000 * seconds / n:8.2f} {seconds / n / slurm_per_cmd:25.1f}")
    ratio = rows[0][2] / rows[1][2]
    for name, runs in figures.items():
        print(f"{name} dispatch, every run: {', '.join(f'{d:.2f}' for d, _ in runs)} s")
    print(f"parallux slurm / parallux local (dispatch, medians): {ratio:.2f}x "
          f"({'PASS' if ratio <= 1.5 else 'FAIL'}: target <= 1.5, issue 24)")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
