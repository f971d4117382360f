#!/usr/bin/env parallux
# On a Slurm cluster: one allocation (a pilot), a launcher on each of its nodes, commands spread over them
# with per-node limits and core pinning -- no Slurm job per command. From a login node:
#   parallux examples/slurm.py -- nodes=2 partition=debug time=0:30:00
# inside an allocation (sbatch -N2 --exclusive --wrap "parallux examples/slurm.py"), without nodes=: the
# allocation's own nodes, and no job is submitted.
from parallux import goal

options = {k: goal.args[k] for k in ("partition", "time", "account", "qos") if k in goal.args}
cluster = goal.slurm("cluster", nodes=int(goal.args["nodes"]) if "nodes" in goal.args else None,
                     max_jobs=int(goal.args.get("per_node", "2")), **options)
goal.setRunner(cluster)
print(f"allocation: job {cluster.job_id}", flush=True)

# A tool and its input, copied to every node's workspace (once, if the nodes share a file system).
goal.put(__file__, "stage/example.py")
for size in (1, 2, 3, 4, 5, 6):
    goal.schd(f"echo size {size} on $PARALLUX_NODE; wc -l < $HOME/parallux/stage/example.py", name=f"size{size}",
              work_relpath=f"slurm-example/size{size}", timeout=60, retries=1)
for result in goal.issue().sync():
    print(f"{result.name}: {result.status} on {result.host}: {result.read_stdout().split()[-1]}")
