#!/usr/bin/env parallux
# Steps that depend on each other: after= starts a command the moment the commands it names ended ok, with
# no barrier -- here a build, three runs of what it built, then a summary of their outputs, while an
# unrelated command runs beside the build. Had the build failed, the runs and the summary would end
# "cancelled" without starting, each naming why; --resume would not build again once the build completed.
#   parallux examples/steps.py [-- workspace=DIR]
import os

from parallux import goal

workspace = os.path.abspath(goal.args.get("workspace", "workspace/steps"))
goal.local(workspace=workspace, max_jobs=4)

# The "build" writes a tiny program into its work dir, <workspace>/build.
build = goal.schd(r"""printf '#!/bin/sh\necho "$1 squared is $(($1 * $1))"\n' > square && chmod +x square""",
                  name="build", work_relpath="build")
sizes = (3, 7, 12)
runs = [goal.schd([f"{workspace}/build/square", str(n)], name=f"run-{n}", work_relpath=f"runs/{n}", after=build)
        for n in sizes]
outputs = " ".join(f"{workspace}/runs/{n}/stdout.txt" for n in sizes)
summary = goal.schd(f"cat {outputs} > table.txt", name="summary", work_relpath="summary", after=runs)
goal.schd("echo needs nothing, runs at once", name="unrelated", work_relpath="unrelated")

for result in goal.issue().sync():
    print(f"{result.name}: {result.status}")
if not goal.dry_run:  # (planned: nothing ran)
    print("every run started after the build ended:",
          all(run.result.start_time >= build.result.end_time for run in runs))
    print(summary.result.read_file("table.txt"), end="")
