#!/usr/bin/env parallux
# Config arguments: everything after `--` is in goal.argv; the key=value items are also in goal.args (str
# values), so a config reads its knobs with defaults:
#   parallux examples/args.py -- case=fft repeat=3 --fast
from parallux import goal

case = goal.args.get("case", "hello")
repeat = int(goal.args.get("repeat", "2"))      # goal.args values are str: convert them yourself
flags = [item for item in goal.argv if "=" not in item]   # items without '=' are only in goal.argv

local = goal.local(name="local", workspace=goal.args.get("workspace", "workspace/args"))
goal.setRunner(local)

print(f"argv={goal.argv} case={case} repeat={repeat} flags={flags}")
for index in range(repeat):
    goal.schd(["echo", f"case={case}", f"index={index}", *flags],   # a list is quoted with shlex.join
              name=f"{case}_{index}", work_relpath=f"{case}/{index}")

for result in goal.issue().sync():
    print(f"{result.name} -> {result.work_dir}")
