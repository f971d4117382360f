"""GPUs leased like cores (SPEC 18), through the real CLI: a fake ``nvidia-smi`` on the runner's PATH reports
4 GPUs, whose PCI addresses a fake machine tree (PARALLUX_MACHINE_ROOT) puts on NUMA nodes 0, 0, 1, 1.
Commands record CUDA_VISIBLE_DEVICES and when they ran: no two ever run on one GPU at once (on two runners
of one machine, a local one and an SSH one to the test sshd: tests/integration/ssh/test_gpus.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.gpu_runs import SPAN, config, machine, overlap_per_gpu, rows  # noqa: F401 (machine: a fixture)
from tests.helpers import run_cli, write_config
from tests.machine_tree import fake_nvidia_smi

CPUS = sorted(os.sched_getaffinity(0))
needs_two_cpus = pytest.mark.skipif(CPUS[:2] != [0, 1], reason="needs CPUs 0 and 1")


def test_gpus_eight_commands_never_share_a_gpu(tmp_path: Path, machine: dict[str, str]) -> None:
    config(tmp_path, machine, f"""
        print("status", r.status().gpu_count, r.available_gpus(), flush=True)
        handles = [r.run({SPAN!r}, name=f"g{{i}}", gpus=1) for i in range(8)]
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert "status 4 [0, 1, 2, 3]" in done.stdout
    found = rows(done.stdout)
    assert len(found) == 8 and all(row["same"] for row in found)
    assert all(len(row["gpus"]) == 1 and row["visible"] == str(row["gpus"][0]) for row in found)
    assert set(overlap_per_gpu(found).values()) == {1}
    assert set(overlap_per_gpu(found)) == {"0", "1", "2", "3"}


def test_gpus_counts_and_exact_indices(tmp_path: Path, machine: dict[str, str]) -> None:
    config(tmp_path, machine, f"""
        handles = [r.run({SPAN!r}, name="three", gpus=[3]), r.run({SPAN!r}, name="pair", gpus=2),
                   r.run({SPAN!r}, name="zero", gpus=[0])]
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    found = {row["name"]: row for row in rows(done.stdout)}
    assert found["three"]["visible"] == "3" and found["zero"]["visible"] == "0"
    assert found["pair"]["gpus"] == [0, 1] and found["pair"]["visible"] == "0,1"  # both of node 0
    assert found["zero"]["start"] >= found["pair"]["end"]  # GPU 0 was the pair's until it ended
    assert set(overlap_per_gpu(list(found.values())).values()) == {1}


@needs_two_cpus
def test_gpus_cores_come_from_the_gpus_numa_node(tmp_path: Path, machine: dict[str, str]) -> None:
    config(tmp_path, machine, f"""
        handles = [r.run({SPAN!r}, name=f"g{{gpu}}", gpus=[gpu]) for gpu in (2, 0, 3, 1)]
    """, runner=", core_pool=[0, 1]")
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    found = {row["name"]: row["cores"] for row in rows(done.stdout)}
    assert found == {"g0": "0", "g1": "0", "g2": "1", "g3": "1"}  # nodes 0, 0, 1, 1: CPUs 0 and 1


def test_gpus_a_request_no_runner_can_meet_is_exit_2_before_anything_runs(tmp_path: Path,
                                                                         machine: dict[str, str]) -> None:
    config(tmp_path, machine, """
        goal.schd("touch ran", name="first", runner=r)  # (registered before it: never issued)
        handles = [r.run("true", name="five", gpus=5)]
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2, done.stderr
    assert "command 'five' can never run: local: gpus=5 is more than the 4 GPUs it offers (0,1,2,3)" in done.stderr
    assert not list(tmp_path.glob("ws/**/ran"))
    config(tmp_path, machine, "handles = [r.run('true', gpus=[4])]")
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2 and "gpus=[4]: GPU 4 is not one it offers (0,1,2,3)" in done.stderr


def test_gpus_a_runner_without_gpus_says_why(tmp_path: Path) -> None:
    fake_nvidia_smi(tmp_path / "bin", 4, fail="NVIDIA-SMI has failed because it couldn't communicate with the "
                                              "NVIDIA driver")
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    config(tmp_path, env, "handles = [r.run('true', gpus=1)]")
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2, done.stderr
    assert "gpus=1 is more than the 0 GPUs it offers (none) (detecting them failed:" in done.stderr
    assert "exited 9: NVIDIA-SMI has failed" in done.stderr
    config(tmp_path, env, "print('count', r.gpu_count()); handles = []", runner=", gpus=[1, 5]")
    done = run_cli(tmp_path, "config.py")  # a list given: nvidia-smi's failure does not matter
    assert done.returncode == 0 and "count 2" in done.stdout, done.stderr


def test_gpus_show_and_the_run_log_name_the_gpus(tmp_path: Path, machine: dict[str, str]) -> None:
    config(tmp_path, machine, f"""
        handles = [r.run({SPAN!r}, name="g3", gpus=[3]), r.run({SPAN!r}, name="plain")]
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    shown = json.loads(run_cli(tmp_path, "show", "--format", "json").stdout)
    by_name = {command["name"]: command for command in shown["commands"]}
    assert by_name["g3"]["gpus"] == [3] and by_name["plain"]["gpus"] == []
    text = run_cli(tmp_path, "show").stdout
    line = next(line for line in text.splitlines() if line.lstrip().startswith("g3"))
    assert "gpu 3" in line, text
    log = next(tmp_path.glob("**/*.jsonl"))
    ended = [record for record in map(json.loads, log.read_text().splitlines()) if record["event"] == "finished"]
    assert {record["name"]: record.get("gpus") for record in ended} == {"g3": [3], "plain": None}


def test_gpus_a_dry_run_plans_them(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        r = goal.local(gpus=[0, 1])
        for i in range(3):
            r.run("true", name=f"g{i}", gpus=1)
    """)
    done = run_cli(tmp_path, "config.py", "--dry-run")
    assert done.returncode == 0, done.stderr
    plans = [line.split("\t") for line in done.stdout.splitlines() if line.startswith("g")]
    assert [plan[4] for plan in plans] == ["gpus=0", "gpus=1", "gpus=0"]
