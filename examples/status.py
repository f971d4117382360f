#!/usr/bin/env parallux
# Scheduling decisions from runner status: a feeder that submits one command at a time with goal.run(),
# only while some runner has a free slot, and sends each to the runner with the most free slots.
# (Plain goal.schd()/issue() lets parallux do all of this itself; a feeder is for configs that decide
# what to run next from what has finished.)
import time

from parallux import goal

workspace = goal.args.get("workspace", "workspace/status")
big = goal.local(name="big", workspace=workspace, max_jobs=3)
small = goal.local(name="small", workspace=workspace, max_jobs=1)
goal.setRunner([big, small])


def wait_until(condition) -> None:
    while not condition():
        time.sleep(0.01)


def free_slots() -> int:
    return sum(status.available_jobs for status in goal.runner_status().values())


handles = []
for index in range(8):
    wait_until(lambda: free_slots() > 0)
    name, status = max(goal.runner_status().items(), key=lambda item: item[1].available_jobs)
    handle = goal.run("sleep 0.3; echo $PARALLUX_RUNNER", name=f"item_{index}", runner=name)
    # The figures count a command once the scheduler has placed it: wait for that before looking again.
    wait_until(lambda: handle.assigned() or handle.done())
    print(f"item_{index} -> {name} (had {status.available_jobs} free of {status.max_jobs}; "
          f"now {big.active_jobs()} running on big, {small.active_jobs()} on small)")
    handles.append(handle)

for handle in handles:
    handle.sync()
print("free slots at the end:", {name: s.available_jobs for name, s in goal.runner_status().items()})
