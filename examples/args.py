#!/usr/bin/env parallux
# Config arguments: everything after `--` is in goal.argv; goal.arg() declares a key=value argument, with its
# type, default and help, and then a key= the config never declared is an error (`-- cse=fft` names case):
#   parallux examples/args.py -- case=fft repeat=3 --fast
#   parallux examples/args.py --dry-run -- repeat=3      (lists the arguments with their values)
from parallux import goal

case = goal.arg("case", default="hello", help="the case to run")
repeat = goal.arg("repeat", default=2, type=int, help="how many times")   # converted: repeat=x is an error
workspace = goal.arg("workspace", default="workspace/args", help="where the work dirs go")
flags = [item for item in goal.argv if "=" not in item]   # items without '=' are only in goal.argv

local = goal.local(name="local", workspace=workspace)
goal.setRunner(local)

print(f"argv={goal.argv} case={case} repeat={repeat} flags={flags}")
for index in range(repeat):
    goal.schd(["echo", f"case={case}", f"index={index}", *flags],   # a list is quoted with shlex.join
              name=f"{case}_{index}", work_relpath=f"{case}/{index}")

for result in goal.issue().sync():
    print(f"{result.name} -> {result.work_dir}")
