#!/usr/bin/env parallux
# Timeouts: when `timeout=SECONDS` expires, the command's whole process tree is stopped (SIGTERM, then
# SIGKILL after a short grace) and its result has status "timeout". With check=False, sync() returns
# the result instead of raising, so the config decides what a timeout means; with check=True (the
# default) sync() would raise parallux.CommandTimeout and parallux would exit with status 1.
from parallux import goal

local = goal.local(name="local", workspace=goal.args.get("workspace", "workspace/timeouts"))
goal.setRunner(local)

goal.schd("echo quick", name="quick", timeout=10)
goal.schd("echo started; sleep 60", name="slow", timeout=0.5, check=False)
goal.schd("sleep 60 & sleep 60 & wait", name="tree", timeout=0.5, check=False)  # children die too
goal.schd("echo oops >&2; exit 3", name="fails", check=False)

for result in goal.issue().sync():
    line = f"{result.name}: status={result.status} returncode={result.returncode} signal={result.signal}"
    if result.duration is not None:
        line += f" after {result.duration:.1f} s"
    print(line)
    if result.status == "timeout":
        print(f"  stdout so far: {result.read_stdout().strip()!r} ({result.stdout_path})")
    elif result.status == "failed":
        print(f"  stderr: {result.read_stderr().strip()!r}")
