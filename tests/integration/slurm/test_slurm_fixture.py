"""Prove the private Slurm cluster (tests/slurm.py) works end to end: nodes, steps, batch jobs, the queue, and
a clean stop."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

import tests.slurm as slurm
from tests.slurm import SlurmCluster, SlurmStartError, start_slurm

WAIT = 30.0  # bound for every wait below: a broken cluster fails the test instead of hanging it


def _wait_until(what: str, check, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _state(cluster: SlurmCluster, job_id: str) -> tuple[str, str] | None:
    """(state, reason) of a queued job, or None once squeue no longer lists it."""
    out = cluster.run("squeue", "-h", "-j", job_id, "-o", "%T|%r", check=False).stdout.strip()
    return tuple(out.split("|", 1)) if out else None  # type: ignore[return-value]


def _sbatch(cluster: SlurmCluster, *args: str) -> str:
    return cluster.run("sbatch", "--parsable", *args).stdout.strip().split(";")[0]


@pytest.fixture
def cluster(slurm_cluster: SlurmCluster):
    """The session cluster, idle before the test and with nothing queued after it."""
    slurm_cluster.wait_idle()
    yield slurm_cluster
    slurm_cluster.cancel_all()


def test_cluster_nodes_are_idle(cluster: SlurmCluster):
    assert cluster.node_states() == {"n1": "idle", "n2": "idle", "n3": "idle"}
    out = cluster.run("sinfo", "-h", "-N", "-o", "%N %c").stdout.split()
    assert f"{cluster.cpus_per_node}" in out
    assert cluster.env["SLURM_CONF"] == str(cluster.conf)


def test_srun_reaches_every_node(cluster: SlurmCluster):
    r = cluster.run("srun", "-N3", "-n3", "sh", "-c", 'echo "$SLURMD_NODENAME $SLURM_CLUSTER_NAME"')
    assert sorted(r.stdout.splitlines()) == [f"n{i} {cluster.cluster_name}" for i in (1, 2, 3)]


def _gpu_env(cluster: SlurmCluster, *argv: str) -> dict[str, str]:
    """The GPU variables a step sees (CUDA_VISIBLE_DEVICES left in the environment on purpose: Slurm must
    replace it, or unset it for a step without GPUs)."""
    names = "CUDA_VISIBLE_DEVICES|GPU_DEVICE_ORDINAL|ROCR_VISIBLE_DEVICES|SLURM_[A-Z_]*GPUS[A-Z_]*"
    show = f"env | grep -E '^({names})=' || true"
    env = dict(cluster.env, CUDA_VISIBLE_DEVICES="7")
    done = subprocess.run([*argv, "sh", "-c", show], env=env, capture_output=True, text=True, timeout=WAIT,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def test_every_node_has_four_gpus_as_generic_resources(cluster: SlurmCluster):
    assert cluster.gpus_per_node == 4
    out = cluster.run("sinfo", "-h", "-N", "-p", cluster.partition, "-o", "%N %G").stdout
    assert sorted(out.split()) == sorted(["n1", "n2", "n3"] + ["gpu:4"] * 3)


def test_a_step_with_gres_gets_its_gpus_named(cluster: SlurmCluster):
    if not cluster.gpu_devices:
        pytest.skip("the fixture's fake GPUs are plain files here (no mknod): Slurm names no GPU ids")
    two = _gpu_env(cluster, "srun", "-N1", "-w", "n2", "--gres=gpu:2")
    assert two == {"CUDA_VISIBLE_DEVICES": "0,1", "GPU_DEVICE_ORDINAL": "0,1", "ROCR_VISIBLE_DEVICES": "0,1",
                   "SLURM_STEP_GPUS": "0,1", "SLURM_GPUS_ON_NODE": "2"}
    assert _gpu_env(cluster, "srun", "-N1", "-w", "n2") == {}  # no GPUs: the inherited value is gone too


def test_a_batch_job_with_gres_names_its_gpus_and_its_steps_share_them(cluster: SlurmCluster, tmp_path: Path):
    if not cluster.gpu_devices:
        pytest.skip("the fixture's fake GPUs are plain files here (no mknod): Slurm names no GPU ids")
    out = tmp_path / "batch.txt"
    job = _sbatch(cluster, "-N1", "-w", "n3", "--ntasks-per-node=1", "--cpus-per-task=1", "--gres=gpu:3",
                  f"--output={out}", "--wrap", "env | grep -E '^SLURM_JOB_GPUS='; sleep 60")
    _wait_until("the batch job's output", lambda: out.exists() and out.read_text())
    assert out.read_text() == "SLURM_JOB_GPUS=0,1,2\n"
    step = _gpu_env(cluster, "srun", f"--jobid={job}", "-N1", "-n1", "--overlap", "--gres=gpu:3")
    assert step["SLURM_STEP_GPUS"] == step["CUDA_VISIBLE_DEVICES"] == "0,1,2"


def test_sbatch_wrap_writes_its_output(cluster: SlurmCluster, tmp_path: Path):
    job_id = _sbatch(cluster, f"--output={tmp_path}/out-%j.txt", "--wrap", 'echo "hello from $SLURM_JOB_ID"')
    # without --output: into the cluster's out dir (SBATCH_OUTPUT), never into the cwd (the checkout)
    default_id = _sbatch(cluster, "--wrap", "echo default")
    for job in (job_id, default_id):
        _wait_until(f"job {job} to leave the queue", lambda: _state(cluster, job) is None)
    assert (tmp_path / f"out-{job_id}.txt").read_text() == f"hello from {job_id}\n"
    assert (cluster.tmpdir / "out" / f"slurm-{default_id}.out").read_text() == "default\n"
    assert not Path(f"slurm-{default_id}.out").exists()


def test_job_pends_while_nodes_are_taken_then_runs(cluster: SlurmCluster, tmp_path: Path):
    release = tmp_path / "release"
    # Holds two of the three nodes whole until the test creates the file (bounded: it never outlives 60 s).
    blocker = _sbatch(cluster, "-N2", "--exclusive", "--output=/dev/null", "--wrap",
                      f"for i in $(seq 600); do [ -e {release} ] && exit 0; sleep 0.1; done")
    _wait_until("the blocker to run", lambda: (_state(cluster, blocker) or ("",))[0] == "RUNNING")
    waiting = _sbatch(cluster, "-N3", f"--output={tmp_path}/all.txt", "--wrap", "srun hostname")
    state = _wait_until("a pending reason", lambda: (s := _state(cluster, waiting)) and s[1] != "None" and s)
    assert state == ("PENDING", "Resources")
    release.touch()
    _wait_until(f"job {waiting} to run and end", lambda: _state(cluster, waiting) is None)
    assert len((tmp_path / "all.txt").read_text().splitlines()) == 3


def test_scancel_ends_a_running_step(cluster: SlurmCluster):
    # The step's own first line says it has launched: a job RUNNING is not yet a step launched, and
    # scancel before the launch ends it as "aborted before step completely launched" instead.
    proc = subprocess.Popen(["srun", "-N1", "sh", "-c", "echo started; exec sleep 300"], env=cluster.env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "started\n"
        job_id = _wait_until("the step to run", lambda: next(
            (j for j, state, _ in cluster.jobs() if state == "RUNNING"), None))
        cluster.run("scancel", job_id)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    # srun says it one of two ways, depending on whether slurmctld's cancel or the step's end reaches it first
    assert "CANCELLED" in err or "Job step aborted" in err, err
    _wait_until(f"job {job_id} to leave the queue", lambda: _state(cluster, job_id) is None)


def test_stop_cancels_every_job_and_leaves_no_process(tmp_path_factory: pytest.TempPathFactory):
    if slurm.missing_binaries() or os.geteuid() != 0:
        pytest.skip("Slurm is not installed, or not root")
    # a second cluster, beside the session's (in a short dir: its sockets' paths are limited)
    own = start_slurm(tmp_path_factory.mktemp("own"), name="plxstop")
    try:
        daemons = [p.pid for p in own.procs.values()]
        step = subprocess.Popen(["srun", "-N3", "sleep", "300"], env=own.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _sbatch(own, "--output=/dev/null", "--wrap", "sleep 300")
        _wait_until("both jobs to run", lambda: [s for _, s, _ in own.jobs()] == ["RUNNING"] * 2)
        sleeps = _wait_until("the sleeps", lambda: len(s := [p for p in own.processes()
                                                             if _program(p) == "sleep"]) == 4 and s)
        own.cancel_all()
        assert own.jobs() == []
    finally:
        killed = own.stop()
    assert step.wait(WAIT) != 0
    assert killed == []  # Slurm itself ended every job: the final sweep found nothing to kill
    assert own.processes() == []
    for pid in daemons + [int(p.split()[0]) for p in sleeps]:
        assert not _alive(pid), pid


def test_start_reports_a_daemon_that_fails(tmp_path_factory: pytest.TempPathFactory):
    if slurm.missing_binaries() or os.geteuid() != 0:
        pytest.skip("Slurm is not installed, or not root")
    d = tmp_path_factory.mktemp("bad")  # short: its sockets' paths are limited
    with pytest.raises(SlurmStartError, match=r"(?s)slurmctld.*exited.*select/nonesuch"):
        start_slurm(d, extra_config="SelectType=select/nonesuch")
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _in_dir(int(p), d)]


def test_start_without_slurm_says_what_is_missing(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(slurm, "_find", lambda name: None if name == "slurmd" else "/bin/true")
    assert slurm.missing_binaries() == ["slurmd"]
    with pytest.raises(SlurmStartError, match="not installed: slurmd"):
        start_slurm(tmp_path)


def _alive(pid: int) -> bool:
    """Running, or stopped: not gone and not a zombie (this machine's init reaps orphans late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _program(process: str) -> str:
    """The program's name in a "pid command line" entry of SlurmCluster.processes() ("" for a process whose
    command line is empty: one that is exiting)."""
    words = process.split()
    return os.path.basename(words[1]) if len(words) > 1 else ""


def _in_dir(pid: int, d: Path) -> bool:
    try:
        return str(d).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
