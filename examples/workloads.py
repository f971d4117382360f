#!/usr/bin/env parallux
# workloads(): one command per input file, each in a work dir derived from the input's last `levels` path
# components, so a rerun (or --resume) writes to the same place. The inputs are the tiny trace files in
# examples/inputs/spec/<suite>/<benchmark>/ref.trace; pass `-- inputs=DIR` to use a tree of your own.
import os
import shlex

from parallux import goal, workloads

inputs = goal.args.get("inputs", os.path.join(os.path.dirname(__file__), "inputs"))
local = goal.local(name="local", workspace=goal.args.get("workspace", "workspace/workloads"))
goal.setRunner(local)

for workload in workloads(
    os.path.join(inputs, "spec/*/*/*.trace"),
    levels=3,                     # spec/int/gcc/ref.trace -> relpath "int/gcc/ref.trace"
    work_prefix="smt-perf-test",  # -> work_relpath "smt-perf-test/int/gcc/ref"
    strip_suffix=True,            # drop ".trace" from the last component
):
    # input_path is absolute: the command runs in its own work dir, where lines.txt lands.
    goal.schd(
        f"wc -l < {shlex.quote(workload.input_path)} > lines.txt && cat lines.txt",
        name=f"smt_perf_{workload.name}",  # name: relpath made safe, e.g. int_gcc_ref
        work_relpath=workload.work_relpath,
    )

for result in goal.issue().sync():
    print(f"{result.name}: {result.work_relpath}")
