"""What a run records of the machines of Slurm nodes (SPEC 17, issue 21), through the real CLI on the test Slurm:
its three nodes run on this host, so they are one machine, probed once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.environment_runs import FIELDS, HOST, events, first_attempt, log_of, position
from tests.helpers import write_config
from tests.slurm import SlurmCluster


def test_environment_slurm_nodes_on_one_host_are_one_machine_probed_once(slurm_cluster: SlurmCluster,
                                                                           tmp_path: Path) -> None:
    slurm_cluster.wait_idle()
    write_config(tmp_path, f"""
        from parallux import goal
        cluster = goal.slurm("cl", nodes=3, workspace={str(tmp_path / "ws")!r})
        goal.setRunner([cluster])
        goal.probe("node", 'echo "on $PARALLUX_NODE"')
        for i in range(6):
            goal.schd("true")
    """)
    env = dict(slurm_cluster.env, HOME=str(tmp_path))
    env.pop("PYTHONPATH", None)
    try:
        done = subprocess.run([sys.executable, "-m", "parallux", "config.py"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
    finally:
        slurm_cluster.cancel_all()
    assert done.returncode == 0, done.stderr
    log = log_of(done.stderr)
    [machine] = events(log, "machine")
    assert machine["label"] == HOST and machine["runners"][0].startswith("cl@")
    assert set(machine["environment"]) == FIELDS | {"parallux"} and machine["environment"]["cpu_model"]
    [probe] = events(log, "probe")
    assert probe["runner"].startswith("cl@") and probe["output"] == f"on {probe['runner'][3:]}\n"
    assert position(log, "machine") < position(log, "probe") < first_attempt(log)
    assert [load["label"] for load in events(log, "machine_load")] == [HOST]
