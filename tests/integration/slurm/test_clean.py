"""``parallux clean`` of a Slurm runner's work dirs, through the real CLI on the test Slurm: it removes nothing on
the nodes, and lists the srun that would (run here as a user would).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.clean_runs import run_id_of
from tests.helpers import run_cli, write_config
from tests.slurm import SlurmCluster


def test_clean_lists_slurm_work_dirs_with_an_srun_that_cleans_them(slurm_cluster: SlurmCluster,
                                                                   tmp_path: Path) -> None:
    slurm_cluster.wait_idle()
    write_config(tmp_path, """
        from parallux import goal
        goal.setRunner(goal.slurm("cl", nodes=1, workspace="ws"))
        goal.schd("echo a", name="a")
    """)
    env = dict(slurm_cluster.env, HOME=str(tmp_path))
    env.pop("PYTHONPATH", None)
    runs = []
    for _ in range(2):
        done = run_cli(tmp_path, "config.py", env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        runs.append(run_id_of(done.stderr))

    done = run_cli(tmp_path, "clean", "--keep", "1", env=env)

    assert done.returncode == 0, done.stderr
    assert "not cleaned: runner 'cl' (slurm" in done.stdout
    assert (tmp_path / "ws" / runs[0] / "00001_a").is_dir()
    commands = [line.strip() for line in done.stdout.splitlines() if line.startswith("  srun ")]
    assert len(commands) == 1, done.stdout
    subprocess.run(commands[0], shell=True, env=env, cwd=tmp_path, check=True, timeout=120,
                   stdin=subprocess.DEVNULL)
    assert sorted(p.name for p in (tmp_path / "ws").iterdir()) == [runs[1]]
