"""``parallux clean`` of an SSH runner's work dirs, through the real CLI against the test sshd: it removes nothing
remote, and lists the commands that would (run here as a user would; the "remote" host is this machine).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.clean_runs import run_id_of
from tests.helpers import run_cli, write_config
from tests.sshd import HOST_ALIAS, SshdServer


def test_clean_lists_remote_work_dirs_with_commands_that_clean_them(sshd_server: SshdServer, tmp_path: Path) -> None:
    """The "remote" host is this machine over a real sshd: the printed commands are run as a user would."""
    remote_ws = tmp_path / "remote_ws"
    write_config(tmp_path, f"""
        from parallux import goal
        far = goal.ssh("far", host={HOST_ALIAS!r}, workspace={str(remote_ws)!r})
        goal.setRunner([far])
        goal.schd("echo a", name="a")
        goal.schd("echo fixed", name="fixed", work_relpath="fixed")
    """)
    env = dict(sshd_server.client_env(), XDG_STATE_HOME=str(tmp_path / "state"))
    runs = []
    for _ in range(3):
        done = run_cli(tmp_path, "config.py", env=env)
        assert done.returncode == 0, done.stderr
        runs.append(run_id_of(done.stderr))
    assert sorted(p.name for p in (remote_ws / "fixed" / ".history").iterdir()) == ["1", "2"]

    done = run_cli(tmp_path, "clean", "--keep", "1", env=env)

    assert done.returncode == 0, done.stderr
    assert all((remote_ws / run / "00001_a").is_dir() for run in runs)  # listed, not removed
    assert "not cleaned: runner 'far' (ssh" in done.stdout
    commands = [line.strip() for line in done.stdout.splitlines() if line.startswith("  ssh ")]
    assert len(commands) == 2, done.stdout
    for command in commands:  # (OpenSSH reads the config of the passwd home, not $HOME's: name it)
        command = command.replace("ssh ", f"ssh -F {sshd_server.ssh_config} ", 1)
        subprocess.run(command, shell=True, env=env, check=True, timeout=60, stdin=subprocess.DEVNULL)
    assert sorted(p.name for p in remote_ws.iterdir()) == sorted(["fixed", runs[2]])
    assert sorted(p.name for p in (remote_ws / "fixed" / ".history").iterdir()) == ["2"]
