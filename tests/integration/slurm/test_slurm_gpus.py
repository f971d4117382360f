"""Slurm runners with GPUs (issue 22) on the test Slurm, whose nodes declare 4 GPUs each: ``gpus_per_node=``
reaches sbatch and each node's launcher step, and commands lease only their node's step GPUs (the argv and
the options in-process: tests/unit/test_slurm_gpu_options.py)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import peak_overlap, wait_until, write_config
from tests.slurm import SlurmCluster


# -- on the test Slurm -------------------------------------------------------------------------------------------


@pytest.fixture
def cluster(slurm_cluster: SlurmCluster) -> SlurmCluster:
    if not slurm_cluster.gpu_devices:
        pytest.skip("the fixture's fake GPUs are plain files here (no mknod): Slurm names no GPU ids")
    slurm_cluster.wait_idle()
    yield slurm_cluster
    slurm_cluster.cancel_all()


def run(cluster: SlurmCluster, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(cluster.env, HOME=str(cwd))
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-m", "parallux", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def log_of(stderr: str) -> list[dict]:
    path = next(line.split(": ", 1)[1] for line in stderr.splitlines() if line.strip().startswith("run log:"))
    return [json.loads(line) for line in Path(path.strip()).read_text().splitlines()]


GPU_CONFIG = """
    import subprocess
    import time
    from parallux import goal
    cl = goal.slurm("cl", nodes=2, {options}, workspace="ws")
    goal.setRunner(cl)
    done = [goal.run('echo "$SLURMD_NODENAME $SLURM_STEP_GPUS $CUDA_VISIBLE_DEVICES"', name=f"c{{i}}",
                     runner=cl) for i in range(4)]
    for handle in done:
        print("OUT", handle.sync().read_stdout().strip())
    deadline = time.monotonic() + 60  # (the first node's launcher, whose facts these are, may come after the
    while not cl.facts and time.monotonic() < deadline:  # other node ran all four)
        time.sleep(0.05)
    print("HELLO", cl.facts.get("step_gpus"))
    show = subprocess.run(["scontrol", "show", "job", "-d", cl.job_id], capture_output=True, text=True).stdout
    print("JOB", " ".join(word for word in show.split() if "gpu" in word.lower()))
"""


def test_gpus_per_node_reaches_sbatch_and_each_nodes_launcher_step(cluster: SlurmCluster, tmp_path: Path) -> None:
    write_config(tmp_path, GPU_CONFIG.format(options="gpus_per_node=2, cpus_per_node=1"))
    done = run(cluster, tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    job = next(line for line in done.stdout.splitlines() if line.startswith("JOB"))
    assert "TresPerNode=gres:gpu:2" in job, job
    assert "GRES=gpu:2(IDX:0-1)" in job, job  # each node gave the job two of its four
    outs = sorted(line.split(" ", 1)[1] for line in done.stdout.splitlines() if line.startswith("OUT"))
    assert {out.split(" ", 1)[1] for out in outs} == {"0,1 0,1"}, outs  # without gpus=, a command sees its step's GPUs
    assert "HELLO [0, 1]" in done.stdout
    record = next(r for r in log_of(done.stderr) if r["event"] == "runner" and r["name"] == "cl")
    assert "--gres=gpu:2" in record["sbatch"]


def test_a_whole_node_job_holds_all_its_gpus_and_the_step_the_ones_asked(cluster: SlurmCluster,
                                                                          tmp_path: Path) -> None:
    write_config(tmp_path, GPU_CONFIG.format(options="gpus_per_node=2"))  # --exclusive: every CPU of the nodes
    done = run(cluster, tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    job = next(line for line in done.stdout.splitlines() if line.startswith("JOB"))
    assert "TresPerNode=gres:gpu:2" in job and "GRES=gpu:4(IDX:0-3)" in job, job  # Slurm's: a whole node's
    assert "HELLO [0, 1]" in done.stdout  # but the launcher's step has the two asked for


def test_without_gpus_per_node_the_step_has_no_gpus(cluster: SlurmCluster, tmp_path: Path) -> None:
    write_config(tmp_path, GPU_CONFIG.format(options="cpus_per_node=1"))
    done = run(cluster, tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert "HELLO None" in done.stdout
    record = next(r for r in log_of(done.stderr) if r["event"] == "runner" and r["name"] == "cl")
    assert not any(arg.startswith("--gres") for arg in record["sbatch"])


def test_gpus_asked_in_sbatch_options_reach_the_step_too(cluster: SlurmCluster, tmp_path: Path) -> None:
    write_config(tmp_path, GPU_CONFIG.format(options='cpus_per_node=1, sbatch_options={"gres": "gpu:1"}'))
    done = run(cluster, tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert "HELLO [0]" in done.stdout  # the step asked for none: it has the job's per-node request


LEASES = """
    import json
    from parallux import goal
    cl = goal.slurm("cl", nodes=2, gpus_per_node=2, cpus_per_node=1, max_jobs=4, workspace="ws",
                    sbatch_options={"nodelist": "n1,n3"})
    goal.setRunner(cl)
    span = 's=$(date +%s.%N); sleep 0.4; echo "$s $(date +%s.%N) $SLURMD_NODENAME $SLURM_STEP_GPUS $CUDA_VISIBLE_DEVICES"'
    handles = [goal.run(span, name=f"g{i}", gpus=1) for i in range(12)]
    for handle in handles:
        result = handle.sync()
        start, end, node, step, visible = result.read_stdout().split()
        print(json.dumps({"start": float(start), "end": float(end), "node": node, "step": step, "visible": visible,
                          "gpus": list(result.gpus), "host": result.host}))
    for node in cl.nodes:
        status = cl.status(node=node)
        print("OFFER", node, status.gpu_count, status.available_gpus)
    print("TOTAL", cl.status().gpu_count)
"""


def test_gpu_leases_stay_within_each_nodes_step_gpus(cluster: SlurmCluster, tmp_path: Path) -> None:
    # GPU 0 of n1 is another job's: the runner's step there gets GPUs 1 and 2, on n3 GPUs 0 and 1
    blocker = cluster.run("sbatch", "--parsable", "-w", "n1", "--ntasks-per-node=1", "--cpus-per-task=1",
                          "--gres=gpu:1", "--output=/dev/null", "--wrap", "sleep 300").stdout.strip()
    assert wait_until(lambda: cluster.jobs() == [(blocker, "RUNNING", "None")], 30, interval=0.1), cluster.jobs()
    write_config(tmp_path, LEASES)
    done = run(cluster, tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    found = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(found) == 12
    steps = {row["node"]: row["step"] for row in found}
    assert steps == {"n1": "1,2", "n3": "0,1"}, steps  # what Slurm gave each node's launcher step
    for row in found:
        assert row["host"] == row["node"] and len(row["gpus"]) == 1 and row["visible"] == str(row["gpus"][0])
        assert row["visible"] in row["step"].split(","), row  # a lease within its node's step GPUs
    spans: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for row in found:
        spans.setdefault((row["node"], row["visible"]), []).append((row["start"], row["end"]))
    assert set(spans) <= {("n1", "1"), ("n1", "2"), ("n3", "0"), ("n3", "1")}
    assert {key: peak_overlap(value) for key, value in spans.items()} == dict.fromkeys(spans, 1)  # never shared
    assert "OFFER n1 2 [1, 2]" in done.stdout and "OFFER n3 2 [0, 1]" in done.stdout  # each node's pool
    assert "TOTAL 4" in done.stdout


def test_inside_an_allocation_with_gpus_its_nodes_offer_the_jobs_gpus(cluster: SlurmCluster, tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        here = goal.slurm("here", workspace="ws", max_jobs=4)  # nodes=None: this job's nodes, nothing submitted
        goal.setRunner(here)
        runs = [goal.run('echo "$SLURMD_NODENAME $CUDA_VISIBLE_DEVICES"', gpus=1) for _ in range(6)]
        print("used", sorted({r.sync().read_stdout().strip() for r in runs}), flush=True)
        status = here.status(node=here.nodes[0])
        print("offer", status.gpu_count, status.available_gpus, here.facts.get("step_gpus"), flush=True)
    """)
    script = tmp_path / "batch.sh"
    script.write_text(f"#!/bin/sh\ncd {tmp_path}\nexec {sys.executable} -m parallux config.py\n")
    out = tmp_path / "batch.out"
    cluster.run("sbatch", "--parsable", "-N1", "-w", "n2", "--ntasks-per-node=1", "--cpus-per-task=1",
                "--gres=gpu:3", f"--output={out}", f"--export=ALL,HOME={tmp_path}", str(script))
    assert wait_until(lambda: not cluster.jobs(), 60, interval=0.2), cluster.jobs()
    text = out.read_text()
    assert "offer 3 [0, 1, 2] [0, 1, 2]" in text, text  # the launcher's step has the job's three GPUs
    used = text.split("used ", 1)[1].splitlines()[0]
    assert set(ast.literal_eval(used)) <= {"n2 0", "n2 1", "n2 2"}, text


def test_a_dry_run_shows_the_sbatch_line_and_submits_nothing(cluster: SlurmCluster, tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.setRunner(goal.slurm("cl", nodes=2, gpus_per_node=2, cpus_per_node=1, max_jobs=4, workspace="ws"))
        for i in range(5):
            goal.schd("echo hi", name=f"c{i}", gpus=1)
    """)
    done = run(cluster, tmp_path, "--dry-run", "config.py")
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if "sbatch" in line)
    assert line.startswith("slurm runner 'cl': sbatch ") and "--nodes=2" in line and "--gres=gpu:2" in line, line
    plan = [line.split("\t") for line in done.stdout.splitlines() if line.startswith("c")]
    assert len(plan) == 5, done.stdout
    # each node's step would have GPUs 0 and 1: four commands at once, on a GPU of their node each
    assert sorted(fields[4] for fields in plan[:4]) == ["gpus=0", "gpus=0", "gpus=1", "gpus=1"], plan
    assert not cluster.jobs()


def test_more_gpus_than_a_node_has_is_a_config_error(cluster: SlurmCluster, tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.setRunner(goal.slurm("cl", gpus_per_node=5, cpus_per_node=1))
        goal.run("true")
    """)
    for args in (["config.py"], ["--dry-run", "config.py"]):
        done = run(cluster, tmp_path, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "(options cpus_per_node=, gpus_per_node=): sbatch refused the allocation" in done.stderr
    assert not cluster.jobs()
