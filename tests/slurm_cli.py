"""The CLI against the test Slurm (tests/slurm.py): run a config from a login shell's environment, wait, read
the run log from stderr, and see what is left on the nodes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import wait_until
from tests.slurm import SlurmCluster

WAIT = 30.0
DAEMONS = ("munged", "slurmctld", "slurmd")


def env_of(cluster: SlurmCluster, home: Path) -> dict[str, str]:
    env = dict(cluster.env, HOME=str(home))
    env.pop("PYTHONPATH", None)
    return env


def run(cluster: SlurmCluster, cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parallux", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env_of(cluster, cwd))


def wait_for(what: str, check, timeout: float = WAIT) -> None:
    assert wait_until(check, timeout, interval=0.1), f"timed out after {timeout:.0f} s waiting for {what}"


def left_on_nodes(cluster: SlurmCluster) -> list[str]:
    """Processes of the cluster that are not its daemons: steps, launchers, commands, pilot scripts."""
    return [p for p in cluster.processes() if os.path.basename(p.split()[1]).rstrip(":") not in DAEMONS]


def log_of(stderr: str) -> list[dict]:
    path = next(line.split(": ", 1)[1] for line in stderr.splitlines() if line.strip().startswith("run log:"))
    return [json.loads(line) for line in Path(path.strip()).read_text().splitlines()]
