"""Slurm's reach, through the real CLI on the test's own Slurm (tests/slurm.py): a cluster reached over SSH
(``goal.slurm(login=...)``, through the test sshd on 127.0.0.1), and allocations that can never start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import write_config
from tests.slurm import SlurmCluster
from tests.test_slurm import run, wait_for


@pytest.fixture
def cluster(slurm_cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    slurm_cluster.wait_idle()
    yield slurm_cluster
    slurm_cluster.cancel_all()


@pytest.fixture
def lenient(slurm_lenient: SlurmCluster) -> Iterator[SlurmCluster]:
    slurm_lenient.wait_idle()
    yield slurm_lenient
    slurm_lenient.cancel_all()


# -- allocations that can never start ---------------------------------------------------------------------------

def test_a_time_limit_beyond_the_partitions_fails_the_runner_and_work_goes_elsewhere(lenient: SlurmCluster,
                                                                                     tmp_path: Path) -> None:
    """Partition ``tiny`` allows 1 minute, the runner asks 5: Slurm (EnforcePartLimits=NO, its default)
    accepts the job, which would pend for ever (PartitionTimeLimit). The runner fails with that reason, its
    job is cancelled, the queued commands run on the other runner, and the one pinned to it ends error."""
    write_config(tmp_path, """
        from parallux import goal
        tiny = goal.slurm("tiny", partition="tiny", time="5", workspace="ws")
        print("job", tiny.job_id, flush=True)
        here = goal.local(workspace="ws-local")
        goal.setRunner([tiny, here])
        results = [goal.run("echo ran", name=f"free{i}").sync() for i in range(3)]
        print("free", sorted({(r.status, r.runner_name) for r in results}))
        pinned = goal.run("echo never", name="pinned", runner=tiny, check=False).sync()
        print("pinned", pinned.status, pinned.error)
        print("status", tiny.status().waiting)
        goal.run("echo never", name="checked", runner=tiny)
    """)
    done = run(lenient, tmp_path, "config.py", timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr  # a command that could not run, under check=True
    lines = done.stdout.splitlines()
    job = lines[0].split()[1]
    assert "free [('ok', 'local')]" in lines, done.stdout
    pinned = next(line for line in lines if line.startswith("pinned "))
    assert pinned.startswith(f"pinned error no runner left to run it (slurm runner 'tiny'"), pinned
    assert f"job {job} can never start: PartitionTimeLimit: its time limit is longer than the partition's" \
        in pinned, pinned
    assert f"status job {job} can never start: PartitionTimeLimit" in done.stdout
    assert f"slurm runner 'tiny': job {job} can never start: PartitionTimeLimit" in done.stderr  # (the notice)
    assert "command 'checked'" in done.stderr and "PartitionTimeLimit" in done.stderr
    wait_for("the job to be cancelled", lambda: not lenient.jobs())


def test_a_nodelist_naming_a_drained_node_fails_the_runner(cluster: SlurmCluster, tmp_path: Path) -> None:
    cluster.run("scontrol", "update", "nodename=n2", "state=drain", "reason=parallux-test")
    try:
        write_config(tmp_path, """
            from parallux import goal
            two = goal.slurm("two", sbatch_options={"nodelist": "n2"}, workspace="ws")
            print("job", two.job_id, flush=True)
            goal.setRunner(two)
            goal.run("echo never", name="c").sync()
        """)
        done = run(cluster, tmp_path, "config.py", timeout=120)
        assert done.returncode == 1, done.stdout + done.stderr
        job = done.stdout.split()[1]
        assert (f"job {job} can never start: ReqNodeNotAvail: nodes it requires are down or drained (n2 drained)"
                in done.stderr), done.stderr
        assert "command 'c'" in done.stderr
        wait_for("the job to be cancelled", lambda: not cluster.jobs())
    finally:
        cluster.run("scontrol", "update", "nodename=n2", "state=resume")
        cluster.wait_idle()
