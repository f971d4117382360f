"""SSH runners refuse bad input like every other call (SPEC 11), against the real sshd of tests/sshd.py:
cores the remote machine does not have, and mistyped keywords of the SSH runner's own methods."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.sshd import HOST_ALIAS, SshdServer


def run_config(srv: SshdServer, tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.py"
    config.write_text("from parallux import goal\n" + textwrap.dedent(body))
    return subprocess.run([sys.executable, "-m", "parallux", str(config), "--", f"host={HOST_ALIAS}"],
                          cwd=tmp_path, env=srv.client_env(), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_SshRunner_core_pool_beyond_the_remote_cpus_is_a_config_error(sshd_server: SshdServer,
                                                                       tmp_path: Path) -> None:
    # The "remote" is this machine, so the CPUs it lets the remote launcher use are ours.
    cpus = sorted(os.sched_getaffinity(0))
    beyond = max(cpus) + 1
    done = run_config(sshd_server, tmp_path, f"""
        server = goal.ssh("server", host=goal.args["host"], workspace={str(tmp_path / 'remote-ws')!r},
                          core_pool=range({beyond + 4}))
        server.run("touch {tmp_path / 'ran-anyway'}")
    """)
    assert done.returncode == 2, done.stderr
    assert "ConfigError: goal.ssh(): ssh runner 'server'" in done.stderr
    assert f"name CPUs {beyond}-{beyond + 4 - 1}" in done.stderr and "does not have" in done.stderr
    have = f"CPUs {cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else f"CPU {cpus[0]}"
    if cpus == list(range(cpus[0], cpus[-1] + 1)):
        assert f"it has {have}" in done.stderr
    assert not (tmp_path / "ran-anyway").exists()
    assert "Traceback" not in done.stderr and "numactl" not in done.stderr


def test_SshRunner_pool_of_the_remote_cpus_is_accepted(sshd_server: SshdServer, tmp_path: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    done = run_config(sshd_server, tmp_path, f"""
        server = goal.ssh("server", host=goal.args["host"], workspace={str(tmp_path / 'remote-ws')!r},
                          core_pool={cpus!r})
        print(server.run("echo $PARALLUX_CORES", threads={len(cpus)}).sync().read_stdout().strip())
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ",".join(map(str, cpus))


def test_SshRunner_methods_refuse_a_mistyped_keyword(sshd_server: SshdServer, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("x")
    done = run_config(sshd_server, tmp_path, f"""
        from parallux import ConfigError
        server = goal.ssh("server", host=goal.args["host"], workspace={str(tmp_path / 'remote-ws')!r})
        for call in (lambda: server.put(local="data.txt", remot="data.txt"),
                     lambda: server.get(remote="data.txt", loacl="back.txt"),
                     lambda: server.status(numa=0)):
            try:
                call()
            except ConfigError as exc:
                print(exc)
    """)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("server.put(): unknown keyword 'remot' (did you mean 'remote'?); the keywords "
                               "are: local, remote")
    assert lines[1].startswith("server.get(): unknown keyword 'loacl' (did you mean 'local'?)")
    assert lines[2].startswith("server.status(): unknown keyword 'numa' (did you mean 'numa_node'?)")
    assert not (tmp_path / "remote-ws" / "data.txt").exists() and not (tmp_path / "back.txt").exists()
