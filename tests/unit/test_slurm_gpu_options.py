"""Slurm runners with GPUs (issue 22), in-process: ``gpus_per_node=`` is checked and asks sbatch for them
(``--gres=gpu:N``), each node's launcher step asks for them too, and the launcher reads its step's GPUs from
Slurm's variables. On the test Slurm: tests/integration/slurm/test_slurm_gpus.py."""

from __future__ import annotations

import pytest

from parallux import _launcher
from parallux._errors import ConfigError
from parallux._runner_options import SLURM
from parallux._transports._slurm._commands import Request, srun_argv


def checked(**given: object) -> Request:
    """goal.slurm()'s options checked as the pool checks them, and the request made of them."""
    return Request.of("cl", SLURM.checked(given, "goal.slurm()"))


# -- the argv (unit) --------------------------------------------------------------------------------------------


def test_sbatch_asks_for_gpus_per_node_as_gres() -> None:
    assert "--gres=gpu:2" in Request("cl", 2, gpus_per_node=2).sbatch_argv()
    assert not any(arg.startswith(("--gres", "--gpus")) for arg in Request("cl", 2).sbatch_argv())


def test_each_nodes_launcher_step_asks_for_the_nodes_gpus() -> None:
    boot = ["python3", "-c", "launcher"]
    argv = srun_argv("7", "n1", boot, gpus=2)
    assert "--gres=gpu:2" in argv and argv.index("--gres=gpu:2") < argv.index("python3")  # srun's, not python's
    assert not any(arg.startswith(("--gres", "--gpus")) for arg in srun_argv("7", "n1", boot))


@pytest.mark.parametrize("value, message", [
    (0, "gpus_per_node must be >= 1, not 0"),
    (-2, "gpus_per_node must be >= 1, not -2"),
    ("2", "gpus_per_node must be an int, not str ('2')"),
    (2.0, "gpus_per_node must be an int, not float (2.0)"),
    (True, "gpus_per_node must be an int, not bool (True)"),
])
def test_gpus_per_node_must_be_a_count(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        checked(gpus_per_node=value)
    assert str(refused.value) == message


@pytest.mark.parametrize("options", [{"gres": "gpu:1"}, {"gpus-per-node": 1}, {"gpus": 4}, ["--gres=gpu:1"],
                                     ["--gpus-per-node=1"], ["--gpus", "2"], ["-G", "2"]])
def test_gpus_asked_both_ways_is_refused(options: object) -> None:
    with pytest.raises(ConfigError, match="gpus_per_node=2 and sbatch_options both ask for GPUs"):
        checked(sbatch_options=options, gpus_per_node=2)


def test_gpus_in_sbatch_options_alone_stay_the_users() -> None:
    made = checked(sbatch_options={"gres": "gpu:1"})
    assert made.gpus_per_node is None and "--gres=gpu:1" in made.sbatch_argv()


# -- what the launcher reads of its step (unit) ------------------------------------------------------------------


@pytest.mark.parametrize("environ, gpus", [
    ({}, None),
    ({"SLURM_STEP_GPUS": "0,1", "CUDA_VISIBLE_DEVICES": "0,1"}, [0, 1]),
    # devices constrained by cgroups: Slurm's ids are the node's, CUDA counts from 0 what the step may see
    ({"SLURM_STEP_GPUS": "2,3", "CUDA_VISIBLE_DEVICES": "0,1"}, [0, 1]),
    ({"SLURM_STEP_GPUS": "2,3"}, [2, 3]),
    ({"SLURM_STEP_GPUS": "2,3", "CUDA_VISIBLE_DEVICES": "GPU-5b2c,GPU-77ae"}, [2, 3]),  # UUIDs: not indices
    ({"SLURM_STEP_GPUS": "2,3", "CUDA_VISIBLE_DEVICES": "0"}, [2, 3]),  # not the step's: Slurm's ids
    ({"SLURM_JOB_GPUS": "0,1,2,3", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}, [0, 1, 2, 3]),  # a batch script's
    ({"SLURM_STEP_GPUS": "1", "SLURM_JOB_GPUS": "0,1,2,3", "CUDA_VISIBLE_DEVICES": "1"}, [1]),  # the step's
    ({"CUDA_VISIBLE_DEVICES": "0,1"}, None),  # no step's GPUs: a user's own setting says nothing of Slurm's
    ({"SLURM_STEP_GPUS": ""}, None),
    ({"SLURM_STEP_GPUS": "(null)"}, None),
])
def test_the_launcher_reads_its_steps_gpus(environ: dict[str, str], gpus: list[int] | None) -> None:
    assert _launcher.step_gpus(environ) == gpus
