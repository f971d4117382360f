#!/usr/bin/env parallux
# Benchmarks: repeat=N measured repetitions after warmup=K warm-ups, each execution in its own work dir
# (<work_relpath>/w1, r1, r2, ...) with $PARALLUX_REPETITION set; one Result per benchmark with the statistics
# of every measure (wall, cpu, memory) over its repetitions. The executions are interleaved across the
# benchmarks, round by round, so that a machine's drift does not bias one of them; setOrder("shuffle", seed=)
# also puts each round in a random order, which the seed reproduces. The run log records the machine (CPU,
# governor, turbo, load, ...) and what goal.probe() printed there; a noisy machine is named in a warning.
from parallux import goal

goal.local(workspace=goal.args.get("workspace", "workspace/benchmark"), max_jobs=1)  # one at a time: no noise
goal.setOrder("shuffle", seed=2024)
goal.probe("python", ["python3", "--version"])  # run once on the machine, before the benchmarks; output kept

sizes = (100_000, 300_000, 1_000_000)
for size in sizes:
    goal.schd(["python3", "-c", f"import os; print(os.environ['PARALLUX_REPETITION'], sum(range({size})))"],
              name=f"sum-{size}", work_relpath=f"sum/{size}", repeat=5, warmup=1)

for result in goal.issue().sync():
    if goal.dry_run:  # planned: nothing ran, nothing measured
        continue
    wall = result.stats["wall"]
    print(f"{result.name}: {len(result.repetitions)} repetitions + {len(result.warmups)} warm-up, "
          f"status {result.status}, wall median {wall.median:.3f} s "
          f"(95% CI {wall.ci_low:.3f}..{wall.ci_high:.3f}, cv {wall.cv:.0%}, outliers {list(wall.outliers)})")
    print(f"  {result.repetitions[0].work_relpath}: {result.repetitions[0].read_stdout().strip()}")
