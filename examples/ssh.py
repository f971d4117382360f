#!/usr/bin/env parallux
# The seed's SSH example: one local runner and one SSH runner, commands spread over both.
#   parallux examples/ssh.py -- host=my-server [user=me] [port=22] [workspace=DIR] [local_workspace=DIR]
# host may be a Host alias of ~/.ssh/config; the runner connects (and checks the host key) right here.
from parallux import goal

local = goal.local(name="local", workspace=goal.args.get("local_workspace"), max_jobs=2)
server = goal.ssh(
    name="server-a",
    host=goal.args.get("host", "runner.example.com"),
    user=goal.args.get("user"),
    port=int(goal.args["port"]) if "port" in goal.args else None,
    workspace=goal.args.get("workspace", "workspace/runners/server-a"),
    max_jobs=4,
)
print(f"{server.describe()}: {server.logical_core_count()} logical cores")

goal.setRunner([local, server])
goal.setParallel(6)

for index in range(12):
    goal.schd("sleep 0.2; echo runner=$PARALLUX_RUNNER host=$(hostname) work_dir=$PARALLUX_WORK_DIR",
              name=f"run_{index}")

for result in goal.issue().sync():
    print(result.read_stdout().strip())
