"""Prove the loopback sshd fixtures (tests/sshd.py) work end to end."""

from __future__ import annotations

import asyncio
import subprocess

import asyncssh
import pytest

from tests.sshd import HOST_ALIAS, SshdServer, sshd_bare, sshd_server  # noqa: F401


def _run(srv: SshdServer, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        srv.ssh_argv(*cmd),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        env=srv.client_env(),
    )


def test_ssh_cli_echo(sshd_server: SshdServer):
    r = _run(sshd_server, "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"
    assert sshd_server.ssh_argv("x")[1:4] == ["-F", str(sshd_server.ssh_config), HOST_ALIAS]


def test_ssh_cli_exit_status_and_user(sshd_server: SshdServer):
    r = _run(sshd_server, "id -un; exit 7")
    assert r.returncode == 7
    assert r.stdout.strip() == sshd_server.user


def test_client_files(sshd_server: SshdServer):
    assert sshd_server.ssh_config == sshd_server.home / ".ssh" / "config"
    assert sshd_server.known_hosts == sshd_server.home / ".ssh" / "known_hosts"
    kh = sshd_server.known_hosts.read_text()
    assert f"[127.0.0.1]:{sshd_server.port} " in kh
    assert f"{HOST_ALIAS} " in kh
    assert sshd_server.running


def test_asyncssh_echo(sshd_server: SshdServer):
    async def main() -> asyncssh.SSHCompletedProcess:
        async with asyncssh.connect(
            sshd_server.host,
            port=sshd_server.port,
            username=sshd_server.user,
            client_keys=[str(sshd_server.client_key)],
            known_hosts=str(sshd_server.known_hosts),
            agent_path=None,
            config=None,
        ) as conn:
            return await conn.run("echo hi", check=True)

    res = asyncio.run(asyncio.wait_for(main(), 30))
    assert res.stdout == "hi\n"
    assert res.exit_status == 0


def test_asyncssh_sftp_is_refused(sshd_server: SshdServer):
    # The test server has no SFTP subsystem, on purpose: parallux must need none (its files travel over the
    # launcher's own channel), and every SSH test runs against such a server.
    async def main() -> None:
        async with asyncssh.connect(
            sshd_server.host,
            port=sshd_server.port,
            username=sshd_server.user,
            client_keys=[str(sshd_server.client_key)],
            known_hosts=str(sshd_server.known_hosts),
            agent_path=None,
            config=None,
        ) as conn:
            async with conn.start_sftp_client():
                pass

    with pytest.raises(asyncssh.ChannelOpenError, match="Session request failed"):
        asyncio.run(asyncio.wait_for(main(), 30))
    assert "Subsystem" not in sshd_server.sshd_config.read_text()


def test_bare_home(sshd_bare: SshdServer):
    assert sshd_bare.bare_home is not None and sshd_bare.bare_home.is_dir()
    r = _run(sshd_bare, 'printf %s "$HOME"')
    assert r.returncode == 0, r.stderr
    assert r.stdout == str(sshd_bare.bare_home)


def test_normal_home_is_not_bare(sshd_server: SshdServer):
    r = _run(sshd_server, 'printf %s "$HOME"')
    assert r.returncode == 0, r.stderr
    assert "barehome" not in r.stdout
