"""A throwaway, self-contained OpenSSH server on loopback for tests.

Nothing here touches the machine's own sshd, ``/etc/ssh`` or ``~/.ssh``:
every key, config, known_hosts file and pid file lives in a temp directory,
the server listens on ``127.0.0.1`` only, on a free port, and clients are
always pointed at an explicit config with ``ssh -F`` (OpenSSH's ``ssh`` reads
``~/.ssh/config`` from the *passwd* home directory, not from ``$HOME``, so
setting ``HOME`` alone is not enough).

Usage::

    from tests.sshd import start_sshd
    srv = start_sshd(tmp_path)
    subprocess.run(srv.ssh_argv("echo", "hi"))
    srv.stop()

or the session-scoped pytest fixtures ``sshd_server`` / ``sshd_bare`` /
``ssh_client_home`` (import them into ``tests/conftest.py``).

Process lifetime: ``sshd -D`` runs as a single listener process (started in
its own session so that no signal it sends can reach pytest).  For each
connection it forks/re-execs a child; ``stop()`` only terminates the
listener.  Connection children are not killed by it: each one ends by itself
when its client disconnects (or its session's command exits).
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
SSH = shutil.which("ssh") or "/usr/bin/ssh"
HOST_ALIAS = "parallux-test"
PRIVSEP_DIR = Path("/run/sshd")

__all__ = [
    "HOST_ALIAS",
    "SshdServer",
    "SshdStartError",
    "start_sshd",
    "sshd_server",
    "sshd_bare",
    "ssh_client_home",
]


class SshdStartError(RuntimeError):
    """The test sshd could not be configured, started or logged into."""


@dataclasses.dataclass
class SshdServer:
    port: int
    user: str
    client_key: Path  # private key; the public one is client_key + ".pub"
    known_hosts: Path
    ssh_config: Path  # client config defining Host HOST_ALIAS
    home: Path  # temp HOME for clients; holds .ssh/config and .ssh/known_hosts
    pid: int
    tmpdir: Path
    sshd_config: Path
    log: Path  # sshd's stderr (-e, LogLevel ERROR)
    bare_home: Path | None = None  # remote $HOME when bare_login_shell=True
    host: str = "127.0.0.1"
    alias: str = HOST_ALIAS
    _proc: subprocess.Popen | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    def ssh_argv(self, *remote_cmd: str) -> list[str]:
        """``ssh -F <config> parallux-test <remote_cmd...>`` as an argv list."""
        return [SSH, "-F", str(self.ssh_config), self.alias, *remote_cmd]

    def client_env(self) -> dict[str, str]:
        """A copy of os.environ with HOME set to the client home and no agent."""
        env = dict(os.environ)
        env["HOME"] = str(self.home)
        env.pop("SSH_AUTH_SOCK", None)
        return env

    @property
    def running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def read_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the listener, wait (bounded), SIGKILL if it lingers.

        Only the listener pid is signalled; per-connection children end when
        their clients disconnect.
        """
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout)
            return
        # Not our child (e.g. reconstructed object): poll for it to go away.
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _current_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path, comment: str) -> None:
    r = subprocess.run(
        [SSH_KEYGEN, "-q", "-N", "", "-t", "ed25519", "-C", comment, "-f", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if r.returncode != 0:
        raise SshdStartError(f"ssh-keygen failed for {path}:\n{r.stdout}{r.stderr}")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _write_sshd_config(d: Path, port: int, user: str, bare: bool, extra: str) -> Path:
    lines = [
        "ListenAddress 127.0.0.1",
        f"Port {port}",
        f"HostKey {d / 'ssh_host_ed25519_key'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}",
        f"PidFile {d / 'sshd.pid'}",
        "StrictModes no",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "HostbasedAuthentication no",
        "PermitRootLogin yes",
        f"AllowUsers {user}",
        # No "Subsystem sftp" line: parallux needs no SFTP (files travel over the launcher's channel), and
        # every SSH test proves it against a server without one.
        "MaxSessions 100",
        "MaxStartups 100",
        "LogLevel ERROR",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "PermitUserRC no",
    ]
    if bare:
        lines.append("PermitUserEnvironment yes")
    if extra:
        lines.append(extra.rstrip("\n"))
    path = d / "sshd_config"
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_client_side(
    d: Path, port: int, user: str, client_key: Path, host_pub: str
) -> tuple[Path, Path, Path]:
    home = d / "client_home"
    dot_ssh = home / ".ssh"
    dot_ssh.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o755)
    os.chmod(dot_ssh, 0o700)
    known_hosts = dot_ssh / "known_hosts"
    known_hosts.write_text(
        f"[127.0.0.1]:{port} {host_pub}\n{HOST_ALIAS} {host_pub}\n"
    )
    config = dot_ssh / "config"
    config.write_text(
        f"""Host {HOST_ALIAS}
    HostName 127.0.0.1
    Port {port}
    User {user}
    IdentityFile {client_key}
    IdentitiesOnly yes
    IdentityAgent none
    UserKnownHostsFile {known_hosts}
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    UpdateHostKeys no
    BatchMode yes
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    ControlMaster no
    ControlPath none
    ConnectTimeout 10
    LogLevel ERROR
"""
    )
    os.chmod(config, 0o600)
    return home, known_hosts, config


def _launch(d: Path, config: Path, log: Path, port: int) -> subprocess.Popen:
    with open(log, "ab") as logf:
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=logf,
            cwd=d,
            # Own session/process group: sshd's kill(0, ...) paths must never
            # reach pytest, and terminal ^C should not be what stops it.
            start_new_session=True,
        )
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SshdStartError(
                f"sshd exited early (rc={proc.returncode}); log {log}:\n"
                + log.read_text(errors="replace")
            )
        if _port_open(port):
            return proc
        time.sleep(0.05)
    proc.kill()
    proc.wait(5)
    raise SshdStartError(
        f"sshd did not listen on 127.0.0.1:{port} within 10 s; log:\n"
        + log.read_text(errors="replace")
    )


def _verify_login(srv: SshdServer, attempts: int = 5) -> None:
    last = ""
    for i in range(attempts):
        try:
            r = subprocess.run(
                srv.ssh_argv("true"),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=20,
                env=srv.client_env(),
            )
        except subprocess.TimeoutExpired as e:
            last = f"timeout: {e}"
        else:
            if r.returncode == 0:
                return
            last = f"rc={r.returncode}\nstdout:{r.stdout}\nstderr:{r.stderr}"
        if not srv.running:
            break
        time.sleep(0.2 * (i + 1))
    raise SshdStartError(
        f"test login via {' '.join(srv.ssh_argv('true'))} failed: {last}\n"
        f"sshd log:\n{srv.read_log()}"
    )


def start_sshd(
    tmpdir: os.PathLike | str,
    *,
    bare_login_shell: bool = False,
    extra_config: str = "",
) -> SshdServer:
    """Configure and start a private sshd on 127.0.0.1; return once a real
    ``ssh ... true`` login succeeded.

    ``bare_login_shell``: the authorized key carries
    ``environment="HOME=<tmpdir>/barehome"`` (with ``PermitUserEnvironment``),
    so the remote shell reads its dotfiles from that empty dir instead of the
    user's real home.  ``extra_config`` is appended to sshd_config verbatim.
    """
    if not os.path.exists(SSHD):
        raise SshdStartError(
            f"{SSHD} not found: install the OpenSSH server "
            "(apt-get install -y openssh-server openssh-client)"
        )
    d = Path(tmpdir).resolve()
    d.mkdir(parents=True, exist_ok=True)
    user = _current_user()

    PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)

    host_key = d / "ssh_host_ed25519_key"
    client_key = d / "client_ed25519"
    for p in (host_key, client_key):
        for q in (p, p.with_name(p.name + ".pub")):
            if q.exists():
                q.unlink()
    _keygen(host_key, "parallux-test-host")
    _keygen(client_key, "parallux-test-client")
    host_pub = " ".join(
        (host_key.with_name(host_key.name + ".pub")).read_text().split()[:2]
    )
    client_pub = client_key.with_name(client_key.name + ".pub").read_text().strip()

    bare_home = None
    opts = ""
    if bare_login_shell:
        bare_home = d / "barehome"
        bare_home.mkdir(exist_ok=True)
        opts = f'environment="HOME={bare_home}" '
    (d / "authorized_keys").write_text(opts + client_pub + "\n")

    log = d / "sshd.log"
    last_err: Exception | None = None
    # The free port is found by bind+close, so it can be taken in between:
    # retry with a fresh port if sshd fails to come up.
    for _ in range(3):
        port = _free_port()
        config = _write_sshd_config(d, port, user, bare_login_shell, extra_config)
        t = subprocess.run(
            [SSHD, "-t", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if t.returncode != 0:
            raise SshdStartError(
                f"sshd -t -f {config} failed (rc={t.returncode}):\n"
                f"{t.stdout}{t.stderr}"
            )
        home, known_hosts, ssh_config = _write_client_side(
            d, port, user, client_key, host_pub
        )
        try:
            proc = _launch(d, config, log, port)
        except SshdStartError as e:
            last_err = e
            continue
        srv = SshdServer(
            port=port,
            user=user,
            client_key=client_key,
            known_hosts=known_hosts,
            ssh_config=ssh_config,
            home=home,
            pid=proc.pid,
            tmpdir=d,
            sshd_config=config,
            log=log,
            bare_home=bare_home,
            _proc=proc,
        )
        try:
            _verify_login(srv)
        except BaseException:
            srv.stop()
            raise
        return srv
    assert last_err is not None
    raise last_err


def _require_sshd() -> None:
    if not os.path.exists(SSHD):
        pytest.fail(
            f"{SSHD} is missing: the SSH tests need the OpenSSH server "
            "(apt-get install -y openssh-server openssh-client)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory):
    """A running loopback sshd (normal login shell) for the whole session."""
    _require_sshd()
    srv = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def sshd_bare(tmp_path_factory):
    """A running loopback sshd whose remote $HOME is an empty 'barehome' dir."""
    _require_sshd()
    srv = start_sshd(tmp_path_factory.mktemp("sshd_bare"), bare_login_shell=True)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def ssh_client_home(sshd_server, monkeypatch):
    """HOME pointed at the client home of ``sshd_server`` (and no ssh-agent)
    for the duration of one test; yields the server."""
    monkeypatch.setenv("HOME", str(sshd_server.home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return sshd_server
