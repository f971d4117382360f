"""What the GPU tests share (tests/integration/local/test_gpus.py, tests/integration/ssh/test_gpus.py): a fake
``nvidia-smi`` reporting 4 GPUs on the runner's PATH, a fake machine tree putting them on NUMA nodes 0, 0, 1, 1,
and commands that say which GPUs they were given and when they ran."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from tests.helpers import peak_overlap, write_config
from tests.machine_tree import fake_machine, fake_nvidia_smi

# Each command says which GPUs it was given (all four variables), its cores and when it ran.
SPAN = ('s=$(date +%s.%N); sleep 0.3; echo "$s $(date +%s.%N) ${CUDA_VISIBLE_DEVICES:--} ${HIP_VISIBLE_DEVICES:--} '
        '${ROCR_VISIBLE_DEVICES:--} ${PARALLUX_GPUS:--} ${PARALLUX_CORES:--}"')
PRINT = """
import json
for h in handles:
    r = h.sync()
    start, end, cuda, hip, rocr, ours, cores = r.read_stdout().split()
    print(json.dumps({"name": r.name, "runner": r.runner_name, "start": float(start), "end": float(end),
                      "visible": cuda, "same": cuda == hip == rocr == ours, "gpus": list(r.gpus), "cores": cores}))
"""


@pytest.fixture
def machine(tmp_path: Path) -> dict[str, str]:
    """The runner's env=: the fake nvidia-smi first on its PATH, the fake tree as its machine."""
    root = fake_machine(tmp_path / "machine", [[0], [1]], gpus=[0, 0, 1, 1], numa={0: [0], 1: [1]})
    fake_nvidia_smi(tmp_path / "bin", 4)
    return {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "PARALLUX_MACHINE_ROOT": str(root)}


def config(tmp_path: Path, env: dict[str, str], body: str, runner: str = "") -> None:
    write_config(tmp_path, f"from parallux import goal\nr = goal.local(workspace='ws', max_jobs=8, env={env!r}"
                           f"{runner})\n" + textwrap.dedent(body) + PRINT)


def rows(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def overlap_per_gpu(found: list[dict]) -> dict[str, int]:
    """The most commands that held each GPU at one instant."""
    by_gpu: dict[str, list[tuple[float, float]]] = {}
    for row in found:
        for gpu in row["visible"].split(","):
            by_gpu.setdefault(gpu, []).append((row["start"], row["end"]))
    return {gpu: peak_overlap(spans) for gpu, spans in sorted(by_gpu.items())}
