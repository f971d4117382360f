#!/usr/bin/env parallux
# Immediate submission: goal.run() and runner.run() start one command now and return its handle without
# waiting; handle.sync() waits for the result. Handles never synced are still waited for at the end.
from parallux import goal

workspace = goal.args.get("workspace", "workspace/immediate")
local = goal.local(name="local", workspace=workspace, max_jobs=2)
other = goal.local(name="other", workspace=workspace, max_jobs=1)
goal.setRunner([local, other])

first = goal.run("sleep 0.2; echo immediate", name="immediate")      # the scheduler picks a runner
pinned = other.run("echo pinned to $PARALLUX_RUNNER", name="pinned")  # always runs on `other`
goal.run("echo nobody waits for me > left.txt", name="unsynced")      # written in its own work dir

for handle in (first, pinned):
    result = handle.sync()
    text = "(dry run)" if goal.dry_run else result.read_stdout().strip()
    print(f"{result.name}: {text} [runner={result.runner_name} status={result.status}]")
# The config ends here: parallux waits for "unsynced" before it exits.
