#!/usr/bin/env parallux
# A scheduling policy: goal.setScheduler(fn). For each command, fn(runners, threads) gets the runners that
# can take it now (in pool order) and its thread count, and returns one of them, or None to let it wait.
# Here: wide commands (threads > 1) only ever run on "big"; narrow ones go where most slots are free.
# Limits, core leases and process handling stay parallux's; commands pinned with runner= skip the policy.
from parallux import goal

workspace = goal.args.get("workspace", "workspace/scheduler")
big = goal.local(name="big", workspace=workspace, max_jobs=2)
small = goal.local(name="small", workspace=workspace, max_jobs=2)
goal.setRunner([big, small])


def wide_on_big(runners, threads):
    # Called in parallux's engine thread: keep it quick, and only read runner status here.
    if threads > 1:
        return next((runner for runner in runners if runner.name == "big"), None)  # None: wait for big
    return max(runners, key=lambda runner: runner.available_jobs())


goal.setScheduler(wide_on_big)

for index in range(6):
    # Without a core pool, threads does not reserve cores; it is only what the policy sees.
    threads = 2 if index % 2 == 0 else 1
    goal.schd("sleep 0.2", name=f"{'wide' if threads > 1 else 'narrow'}_{index}", threads=threads)

for result in goal.issue().sync():
    print(f"{result.name} ran on {result.runner_name}")
