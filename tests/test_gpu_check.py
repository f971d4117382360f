"""bench/gpu_check.sh, the check of GPU isolation meant for a real multi-GPU host, run here against a fake
nvidia-smi reporting 4 GPUs: it runs 8 commands with gpus=1 through the real CLI and says they were isolated;
given records where two commands held one GPU at once (or one held none), it fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, cli_env
from tests.machine_tree import fake_nvidia_smi

SCRIPT = REPO / "bench" / "gpu_check.sh"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    fake_nvidia_smi(tmp_path / "bin", 4)
    parallux = tmp_path / "bin" / "parallux"  # the parallux of this checkout, as the script's PARALLUX
    parallux.write_text(f"#!/bin/sh\nexec {sys.executable} -m parallux \"$@\"\n")
    parallux.chmod(0o755)
    env = cli_env(tmp_path, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", TMPDIR=str(tmp_path),
                  PARALLUX=str(parallux))
    return subprocess.run(["sh", str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_gpu_check_passes_parallux_leases(tmp_path: Path) -> None:
    done = run(tmp_path, "8", "0.3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gpu_check: runner offers 4 GPUs: [0, 1, 2, 3]" in done.stdout
    assert "gpu_check: 8 commands on 4 GPUs (0, 1, 2, 3)" in done.stdout
    assert "gpu_check: ok: no GPU ran two commands at once" in done.stdout


def record(directory: Path, name: str, start: float, end: float, visible: str, uuid: str) -> None:
    (directory / "ws" / name).mkdir(parents=True)
    (directory / "ws" / name / "record.txt").write_text(
        f"start={start}\nvisible={visible}\ncores=\nlist=GPU 0: Fake;GPU 1: Fake\nuuid={uuid}\ncuda=\nend={end}\n")


def test_gpu_check_fails_on_a_gpu_held_twice_or_not_at_all(tmp_path: Path) -> None:
    record(tmp_path / "runs", "gpu0", 0.0, 2.0, "0", "GPU-a")
    record(tmp_path / "runs", "gpu1", 1.0, 3.0, "0", "GPU-a")
    record(tmp_path / "runs", "gpu2", 1.0, 3.0, "1", "GPU-b")
    record(tmp_path / "runs", "gpu3", 0.0, 1.0, "", "")
    done = run(tmp_path, "--check", str(tmp_path / "runs"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "gpu_check: FAILED: gpu0 and gpu1 held GPU 0 (GPU-a) at the same time" in done.stdout
    assert "gpu_check: FAILED: gpu3 was given '', not one GPU" in done.stdout
