"""Bad input is refused at the call, before anything starts, with a message naming the bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli, write_config

PRELUDE = """
from parallux import goal
local = goal.local(name="local", workspace="ws", core_pool=None)
pooled = goal.local(name="pooled", workspace="ws", numa_nodes={0: [0], 1: [1]})
other = goal.local(name="other", workspace="ws")
goal.setRunner([local, pooled])
goal.schd("touch ../../ran-anyway", name="innocent")
"""

BAD_CALLS = [
    ('goal.schd("echo", colour="red")', "unknown option 'colour'"),
    ('goal.run("echo", Threads=2)', "unknown option 'Threads'"),
    ('goal.schd("echo", threads=0)', "threads must be >= 1, not 0"),
    ('goal.schd("echo", threads="2")', "threads must be an int"),
    ('goal.schd("echo", threads=2.0)', "threads must be an int"),
    ('goal.schd("echo", runner=pooled, threads=3)', "pooled"),
    ('goal.schd("echo", runner=pooled, numa_node=7)', "7"),
    ('goal.schd("echo", runner=pooled, numa_node=0, threads=2)', "node 0"),
    ('goal.schd("echo", runner=pooled, cores=[5])', "5"),
    ('goal.schd("echo", runner=pooled, cores=[0, 0])', "twice"),
    ('goal.schd("echo", runner=pooled, cores=[0], threads=2)', "contradicts"),
    ('goal.schd("echo", runner=local, cores=[0])', "core_pool"),
    ('goal.schd("echo", numa_node="0")', "numa_node must be an int"),
    ('goal.schd("echo", runner=local, numa_node=0)', "local: numa_node=0 needs a runner with numa_nodes"),
    ('local.run("echo", numa_node=1)', "can never run: local: numa_node=1 needs a runner with numa_nodes"),
    ('goal.setRunner(local); goal.schd("echo", numa_node=0)', "local: numa_node=0 needs a runner with"),
    ('goal.schd("echo", runner=other)', "not in the pool"),
    ('goal.schd("echo", runner="nope")', "no runner named 'nope'"),
    ('goal.schd("echo", work_relpath="/abs/path")', "must be relative"),
    ('goal.schd("echo", work_relpath="a/../b")', "must not contain '..'"),
    ('goal.schd("echo", work_relpath="~/x")', "must be relative"),
    ('goal.schd("echo", work_relpath=".")', "must name a directory"),
    ('goal.schd("a", work_relpath="same"); goal.schd("b", work_relpath="same/")', "already used"),
    ('goal.schd("echo", timeout=0)', "positive number of seconds"),
    ('goal.schd("echo", timeout="10")', "number of seconds"),
    ('goal.schd("echo", timeout=True)', "number of seconds"),
    ('goal.schd("echo", check="yes")', "check must be True or False"),
    ('goal.schd("echo", memory=0)', "memory must be a positive number of bytes"),
    ('goal.schd("echo", memory=-5)', "memory must be a positive number of bytes"),
    ('goal.schd("echo", memory="lots")', "memory='lots' is not a size"),
    ('goal.schd("echo", memory="12Q")', "memory='12Q' is not a size"),
    ('goal.schd("echo", memory="0.5K")', "is 512 bytes: a limit must be at least 1 MiB"),
    ('goal.schd("echo", memory="1e9")', "memory='1e9' is not a size"),
    ('goal.schd("echo", memory=True)', "memory must be"),
    ('goal.schd("echo", memory=1.5e9)', "memory must be"),
    ('goal.schd("echo", memory="100")', "at least 1 MiB"),
    ('goal.schd("echo", env={"N": 4})', "the value of N must be a str"),
    ('goal.schd("echo", env=["A=1"])', "env must be a dict"),
    ('goal.schd("echo", name="")', "name must be a non-empty str"),
    ('goal.schd("echo", retries=-1)', "retries must be >= 0"),
    ('goal.schd("   ")', "the command is empty"),
    ('goal.schd(["echo", 3])', "must be a str, not int"),
    ('goal.schd(42)', "not int"),
    ('goal.run("echo", cwd=3)', "cwd must be a path"),
    ('local.run("echo", runner=local)', "takes no runner= option"),
    ('goal.local(name="local")', "already exists"),
    ('goal.local(name="x", max_jobs=0)', "max_jobs must be >= 1"),
    ('goal.local(name="x", env={"A": 1})', "the value of A must be a str"),
    ('goal.local(name="x", core_pool=[])', "empty"),
    ('goal.local(name="x", numa_nodes={0: [0, 1], 1: [1]})', "1"),
    ('goal.local(name="x", core_pool=[0], numa_nodes={0: [0, 1]})', "1"),
    ('goal.setParallel(0)', "setParallel(n) must be >= 1"),
    ('goal.setEnv("A", 1)', "the value of A must be a str"),
    ('goal.setEnv("A=B", "1")', "not a valid environment variable name"),
    ('goal.setScheduler(42)', "needs a function"),
    ('goal.setRunner([])', "at least one runner"),
    ('goal.setRunner([local, local])', "lists a runner twice"),
    ('local.status(numa_node=0)', "no NUMA node 0"),
    ('goal.ssh("srv", reconnect=-1)', "goal.ssh('srv'): reconnect must be a number of seconds >= 0, not -1"),
    ('goal.ssh("srv", reconnect="300")', "reconnect must be a number of seconds >= 0, not '300'"),
    ('goal.ssh("srv", reconnect=True)', "reconnect must be a number of seconds >= 0, not True"),
    ('goal.ssh("srv", reconnect=float("inf"))', "reconnect must be a number of seconds >= 0, not inf"),
    ('goal.ssh("srv", reconect=60)', "unknown option 'reconect' (did you mean 'reconnect'?)"),
    ('goal.slurm("s", gpus_per_node=0)', "goal.slurm(): gpus_per_node must be >= 1, not 0"),
    ('goal.slurm("s", gpus_per_node="2")', "goal.slurm(): gpus_per_node must be an int, not str ('2')"),
    ('goal.slurm("s", gpus_per_node=2, sbatch_options={"gres": "gpu:2"})',
     "goal.slurm(): gpus_per_node=2 and sbatch_options both ask for GPUs (--gres=gpu:2)"),
    ('goal.slurm("s", gpu_per_node=2)', "unknown option 'gpu_per_node' (did you mean 'gpus_per_node'?)"),
]


@pytest.mark.parametrize("call, message", BAD_CALLS, ids=[c for c, _ in BAD_CALLS])
def test_validation_refuses_bad_input_before_anything_runs(tmp_path: Path, call: str, message: str) -> None:
    write_config(tmp_path, PRELUDE + call + "\n")
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "config.py\", line 8" in done.stderr  # points at the offending line of the config
    assert not (tmp_path / "ran-anyway").exists()
    assert "Traceback" not in done.stderr
