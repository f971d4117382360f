#!/usr/bin/env python3
"""What N trivial commands cost on Slurm without parallux: one ``sbatch`` per command, and one job array;
with ``xargs -P`` on this machine as the reference. Run against the private three-node cluster of
``tests/slurm.py`` (3 nodes of this machine's CPUs; 2 cores here, so 6 one-CPU jobs at once).

What is measured
----------------
Wall time, seen from outside, from the first submission until the last command has completed, for N commands
``true``, each writing its stdout and stderr into its own directory ``WS/I``:

* ``sbatch per command`` -- N times ``sbatch --parsable --job-name=TAG --output=WS/I/stdout.txt
  --error=WS/I/stderr.txt --wrap true``, one after the other (as a shell loop would), then ``squeue -h -n TAG``
  once a second until it lists none of them. Each job is a batch job of one CPU.
* ``job array`` -- one ``sbatch --array=0-(N-1) --output=WS/%a/stdout.txt --error=WS/%a/stderr.txt --wrap true``,
  then the same wait. (``MaxArraySize`` in the fixture's slurm.conf is 10001.)
* ``xargs -P P`` -- ``bench/dispatch.py``'s xargs snippet: local, no Slurm; creates each dir itself.

Slurm does not create the directory of ``--output``: the N directories are created before the clock starts for
both Slurm rows. Completion is seen through squeue (the fixture has no accounting, so no sacct), polled once a
second, so the Slurm figures are late by up to a second; they are tens of seconds or more anyway. Afterwards
every command's ``stdout.txt`` is checked to exist.

``sbatch`` per command is slow: by default it runs at ``--sbatch-n`` (200) commands, not N, and its per-command
time is what compares; pass ``--sbatch-n 2000`` for the full N.

The functions ``sbatch_per_command``, ``job_array`` and ``xargs_local`` are meant to be imported by
``bench/slurm_dispatch.py`` (issue 15), which adds parallux's Slurm runner to the same table.

    .venv/bin/python bench/slurm_baselines.py [--n 2000] [--sbatch-n 200] [--p 6] [--tmp DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.dispatch import run_tool, xargs_tool  # noqa: E402
from tests.slurm import SlurmCluster, start_slurm  # noqa: E402

POLL = 1.0  # seconds between squeue calls: sparing, as a site would ask
WAIT_LIMIT = 3600.0


class BaselineError(Exception):
    pass


def _make_dirs(workspace: Path, n: int) -> None:
    for index in range(n):
        (workspace / str(index)).mkdir(parents=True)


def _wait_for_queue(cluster: SlurmCluster, tag: str, started: float) -> float:
    """Poll squeue until no job named tag is pending, running or completing; the elapsed seconds then."""
    while True:
        out = cluster.run("squeue", "-h", "-n", tag, "-o", "%i", timeout=60).stdout
        if not out.strip():
            return time.perf_counter() - started
        if time.perf_counter() - started > WAIT_LIMIT:
            raise BaselineError(f"jobs {tag} still queued after {WAIT_LIMIT:.0f} s")
        time.sleep(POLL)


def _check_outputs(workspace: Path, n: int, what: str) -> None:
    missing = [i for i in range(n) if not (workspace / str(i) / "stdout.txt").exists()]
    if missing:
        raise BaselineError(f"{what}: {len(missing)} of {n} commands left no stdout.txt (first: {missing[0]})")


def sbatch_per_command(cluster: SlurmCluster, workspace: Path, n: int) -> float:
    """Seconds from the first sbatch until all n one-command batch jobs have left the queue."""
    _make_dirs(workspace, n)
    tag = f"plxb-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    for index in range(n):
        d = workspace / str(index)
        cluster.run("sbatch", "--parsable", f"--job-name={tag}", f"--output={d}/stdout.txt",
                    f"--error={d}/stderr.txt", "--wrap", "true")
    elapsed = _wait_for_queue(cluster, tag, started)
    _check_outputs(workspace, n, "sbatch per command")
    return elapsed


def job_array(cluster: SlurmCluster, workspace: Path, n: int) -> float:
    """Seconds from the sbatch --array until all its n tasks have left the queue."""
    _make_dirs(workspace, n)
    tag = f"plxa-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    cluster.run("sbatch", "--parsable", f"--job-name={tag}", f"--array=0-{n - 1}",
                f"--output={workspace}/%a/stdout.txt", f"--error={workspace}/%a/stderr.txt", "--wrap", "true")
    elapsed = _wait_for_queue(cluster, tag, started)
    _check_outputs(workspace, n, "job array")
    return elapsed


def xargs_local(workspace: Path, n: int, p: int) -> float:
    """Seconds for ``xargs -P p`` to run the n commands locally (bench/dispatch.py's snippet)."""
    return run_tool(xargs_tool(workspace, n, p), n, 0).seconds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="commands for the array and xargs (default 2000)")
    parser.add_argument("--sbatch-n", type=int, default=200, help="commands for sbatch per command (200)")
    parser.add_argument("--p", type=int, default=6, help="xargs -P (default 6: the cluster's 3 x 2 CPUs)")
    parser.add_argument("--tmp", default=None, help="scratch dir (default: a new temp dir)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="plx-slurm-bench-", dir=args.tmp))
    print(f"scratch: {scratch}", file=sys.stderr)
    cluster = start_slurm(scratch / "cluster", name="plxbench")
    rows: list[tuple[str, int, float]] = []
    try:
        rows.append(("xargs -P%d (local)" % args.p, args.n, xargs_local(scratch / "xargs", args.n, args.p)))
        rows.append(("job array", args.n, job_array(cluster, scratch / "array", args.n)))
        rows.append(("sbatch per command", args.sbatch_n,
                     sbatch_per_command(cluster, scratch / "sbatch", args.sbatch_n)))
    finally:
        left = cluster.stop()
        if left:
            print(f"killed leftovers: {left}", file=sys.stderr)
    reference = rows[0][2] / rows[0][1]
    print(f"{'':22} {'N':>6} {'seconds':>9} {'cmds/s':>8} {'ms/cmd':>8} {'per cmd / xargs':>16}")
    for name, n, seconds in rows:
        print(f"{name:22} {n:6d} {seconds:9.2f} {n / seconds:8.1f} {1000 * seconds / n:8.2f} "
              f"{seconds / n / reference:16.1f}")
    if args.json:
        print(json.dumps([{"tool": name, "n": n, "seconds": round(s, 3)} for name, n, s in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
