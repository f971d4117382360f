#!/usr/bin/env parallux
# Staging a binary and its inputs to a pool: goal.put() copies them to every runner at once, commands use
# them there, get() brings what they wrote back. Two local runners stand in for servers here (each has its
# own workspace); with goal.ssh(...) runners the same lines copy over SSH, needing nothing on the servers
# but Python. Run it twice: the second run sends nothing, since unchanged files are skipped.
#   parallux examples/staging.py [-- workspace=DIR]
import os

from parallux import goal

here = os.path.dirname(os.path.abspath(__file__))
workspace = os.path.abspath(goal.args.get("workspace", "workspace/staging"))
pool = []
for name in ("node-a", "node-b"):
    stage = os.path.join(workspace, name, "stage")  # where goal.put() below puts things on that runner
    pool.append(goal.local(name=name, workspace=os.path.join(workspace, name), max_jobs=2,
                           env={"STAGE": stage}))
goal.setRunner(pool)

# The campaign's base files, on every runner: the tool (it stays executable) and its input tree. A relative
# remote path is in each runner's workspace; "bin/" ends with a slash: into that directory.
for name, sent in goal.put(os.path.join(here, "tools", "count-ops"), "stage/bin/").items():
    print(f"{name}: tool: {sent.files_sent} sent, {sent.files_skipped} unchanged")
for name, sent in goal.put(os.path.join(here, "inputs"), "stage/inputs").items():
    print(f"{name}: inputs: {sent.files_sent} sent, {sent.files_skipped} unchanged, {sent.bytes_sent} bytes")

benches = ["int/gcc", "int/mcf", "fp/lbm"]
for bench in benches:
    goal.schd(f"$STAGE/bin/count-ops $STAGE/inputs/spec/{bench}/ref.trace > ops.txt", name=bench,
              work_relpath=f"ops/{bench}")

for bench, result in zip(benches, goal.issue().sync()):
    # read_file() reads a file of the work dir wherever the runner is; get() copies it here.
    print(f"{bench} on {result.runner_name}: {result.read_file('ops.txt').strip()}")
    result.runner.get(f"{result.work_dir}/ops.txt", os.path.join(workspace, "collected", f"{result.name}.txt"))
