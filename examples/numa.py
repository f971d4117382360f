#!/usr/bin/env parallux
# Core and NUMA pinning (the seed's NUMA example, sized for a 2-CPU machine): each command leases cores
# from the runner's pool and runs under `numactl --physcpubind=<cores> --localalloc`.
# Pass `-- cpus=4` (or more) on a bigger machine to declare two nodes of cpus/2 cores each.
from parallux import goal

cpus = int(goal.args.get("cpus", "2"))
half = cpus // 2
local = goal.local(
    name="local",
    workspace=goal.args.get("workspace", "workspace/numa"),
    core_pool=range(0, cpus),
    numa_nodes={0: range(0, half), 1: range(half, cpus)},
)
goal.setRunner(local)

for index in range(2):
    goal.schd(
        "echo runner=$PARALLUX_RUNNER cores=$PARALLUX_CORES node=$PARALLUX_NUMA_NODE; "
        "grep Cpus_allowed_list /proc/self/status",
        runner=local,
        threads=1,
        numa_node=0,
        work_relpath=f"numa/{index}",
    )

for result in goal.issue().sync():
    allowed = result.read_stdout().split()  # empty in a --dry-run (goal.dry_run): nothing ran
    print(result.name, result.cores, result.numa_node, allowed[-1] if allowed else "-")
