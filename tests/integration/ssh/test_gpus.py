"""GPUs of one machine shared by a local runner and an SSH runner to the test sshd (SPEC 18): never two
commands on one GPU at once, whichever runner started them (the fake GPUs: tests/gpu_runs.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.gpu_runs import PRINT, SPAN, machine, overlap_per_gpu, rows  # noqa: F401 (machine: a fixture)
from tests.helpers import cli_env, write_config
from tests.sshd import HOST_ALIAS, SshdServer


def test_gpus_a_local_and_an_ssh_runner_of_one_machine_share_them(sshd_server: SshdServer, tmp_path: Path,
                                                                  machine: dict[str, str]) -> None:
    write_config(tmp_path, f"""
        from parallux import goal
        local = goal.local(workspace={str(tmp_path / "local")!r}, max_jobs=2, env={machine!r})
        server = goal.ssh("server", host=goal.args["host"], workspace={str(tmp_path / "server")!r}, max_jobs=4,
                          env={machine!r})
        goal.setRunner([local, server])
        print("status", local.gpu_count(), server.gpu_count(), flush=True)
        handles = [goal.run({SPAN!r}, name=f"g{{i}}", gpus=1) for i in range(8)]
    """ + textwrap.indent(PRINT, "        "))
    env = {**sshd_server.client_env(), **{k: v for k, v in cli_env(tmp_path).items() if k == "PATH"}}
    done = subprocess.run([sys.executable, "-m", "parallux", "config.py", "--", f"host={HOST_ALIAS}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "status 4 4" in done.stdout
    found = rows(done.stdout)
    assert {row["runner"] for row in found} == {"local", "server"}
    assert set(overlap_per_gpu(found).values()) == {1}
    assert "runners local, server share machine" in done.stderr
