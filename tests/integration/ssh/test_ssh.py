"""SSH runners against a real OpenSSH sshd on loopback, driven through the real CLI in a subprocess.

The "remote" host is this machine, so a test can look at the remote work dirs directly and check with /proc
that nothing a command started is left running. Every command a test starts carries a fresh
``PARALLUX_TEST_MARK`` in its environment; the tests find processes by that mark (or, for the sshd process that
serves a connection, by walking up from a marked process), never by name, and signal only those.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from parallux._transports._ssh._connect import _cpu_has_aes
from tests.helpers import REPO
from tests.ssh_cli import (CLI_TIMEOUT, MARK_VAR, cli, marked_pids, run_cli, serving_sshd, start_cli, wait_for,
                           write_config)
from tests.sshd import HOST_ALIAS, SSH, SshdServer, start_sshd


# -- helpers -------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# how Python shows a warning: "path:line: SomeWarning: text"
THIRD_PARTY_WARNING = re.compile(r":\d+: \w*Warning: ")


@pytest.fixture
def mark() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def remote_ws(tmp_path: Path) -> Path:
    return tmp_path / "remote-ws"


# -- the runner at work --------------------------------------------------------------------------------------

def test_SshRunner_runs_the_seed_shape_over_local_and_server(sshd_server: SshdServer, tmp_path: Path,
                                                               remote_ws: Path) -> None:
    config = write_config(tmp_path, f"""
        local = goal.local(workspace={str(tmp_path / 'local-ws')!r}, env={{"RUNNER_TAG": "L"}}, max_jobs=1)
        server = goal.ssh("server", host=goal.args["host"], workspace={str(remote_ws)!r},
                          env={{"RUNNER_TAG": "S"}}, max_jobs=1)
        goal.setRunner([local, server])
        goal.setParallel(2)
        for index in range(6):
            goal.schd("sleep 0.3; echo runner=$PARALLUX_RUNNER tag=$RUNNER_TAG", name=f"run_{{index}}",
                      work_relpath=f"run_{{index}}")
        results = goal.issue().sync()
        print(server.describe())
        print("cores", server.logical_core_count(), "status", server.status().connected)
        for result in results:
            print(result.name, result.runner_name, result.read_stdout().strip())
    """)
    done = run_cli(sshd_server, config)
    assert done.returncode == 0, done.stderr
    assert not THIRD_PARTY_WARNING.search(done.stderr), done.stderr  # e.g. cryptography's, as asyncssh imports it
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"ssh runner 'server' ({sshd_server.user}@127.0.0.1:{sshd_server.port}")
    assert lines[1] == f"cores {os.cpu_count()} status True"
    ran_on = {line.split()[1] for line in lines[2:]}
    assert ran_on == {"local", "server"}
    for line in lines[2:]:
        name, runner, output = line.split(" ", 2)
        assert output == f"runner={runner} tag={'L' if runner == 'local' else 'S'}"
        work_dir = (tmp_path / "local-ws" if runner == "local" else remote_ws) / name
        assert (work_dir / "stdout.txt").read_text().strip() == output
        record = json.loads((work_dir / "result.json").read_text())
        assert record["returncode"] == 0 and record["runner"] == runner and "max_rss_kb" in record


def test_SshRunner_never_exceeds_max_jobs_over_200_commands(sshd_server: SshdServer, tmp_path: Path,
                                                            remote_ws: Path) -> None:
    config = write_config(tmp_path, f"""
        server = goal.ssh("server", host=goal.args["host"], workspace={str(remote_ws)!r}, max_jobs=16)
        goal.setRunner(server)
        for index in range(200):
            goal.schd("date +%s.%N > t0; sleep 0.25; date +%s.%N > t1", work_relpath=f"c{{index:03d}}")
        goal.issue().sync()
    """)
    done = run_cli(sshd_server, config)
    assert done.returncode == 0, done.stderr
    events = []
    for work_dir in remote_ws.iterdir():
        events.append((float((work_dir / "t0").read_text()), 1))
        events.append((float((work_dir / "t1").read_text()), -1))
    assert len(events) == 400
    running = peak = 0
    for _, delta in sorted(events):
        running += delta
        peak = max(peak, running)
    assert 12 <= peak <= 16


def test_SshRunner_resume_finds_the_records_on_every_runner_of_the_pool(sshd_server: SshdServer, tmp_path: Path,
                                                                       remote_ws: Path) -> None:
    # 600 commands over [local, server]; every fifth fails until a flag file exists. --resume must skip the
    # 480 that succeeded, on whichever runner they ran (the server's records are read by its launcher, in
    # batches), and run the 120 others again.
    flag = tmp_path / "flag"
    config = write_config(tmp_path, f"""
        local = goal.local(workspace={str(tmp_path / "local-ws")!r}, max_jobs=4)
        server = goal.ssh("server", host=goal.args["host"], workspace={str(remote_ws)!r}, max_jobs=4)
        goal.setRunner([local, server])
        for i in range(600):
            goal.schd(f"[ {{i % 5}} -ne 0 ] || [ -e {str(flag)!r} ]", work_relpath=f"c{{i:03d}}",
                      check=False)
        results = goal.issue().sync()
        print("runners", sorted({{r.runner_name for r in results}}))
        print("resumed", sorted(int(r.work_relpath[1:]) for r in results if r.resumed))
        print("ok", sum(r.status == "ok" for r in results))
    """)
    first = run_cli(sshd_server, config)
    assert "runners ['local', 'server']" in first.stdout, first.stderr
    assert "ok 480" in first.stdout
    records = {d.name: (d / "result.json").read_text()
               for ws in (tmp_path / "local-ws", remote_ws) for d in ws.iterdir() if (d / "result.json").exists()}
    assert len(records) == 600

    flag.touch()
    second = subprocess.run([sys.executable, "-m", "parallux", "--resume", *cli(sshd_server, config)[3:]],
                            cwd=tmp_path, env=sshd_server.client_env(), capture_output=True, text=True,
                            timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL)
    assert second.returncode == 0, second.stderr
    assert f"resumed {[i for i in range(600) if i % 5]}" in second.stdout
    assert "ok 600" in second.stdout and "resumed: 480 commands skipped" in second.stderr
    for ws in (tmp_path / "local-ws", remote_ws):
        for d in ws.iterdir():
            if int(d.name[1:]) % 5:  # skipped: its record is the first run's, untouched
                assert (d / "result.json").read_text() == records[d.name]


def test_SshRunner_passes_environment_values_exactly(sshd_server: SshdServer, tmp_path: Path,
                                                     remote_ws: Path) -> None:
    values = {
        "V_SPACES": "  two  spaces  ",
        "V_QUOTES": "it's \"quoted\" `tick`",
        "V_DOLLAR": "$HOME ${PATH} $(id) !!",
        "V_BACKSLASH": "a\\b\\\\c\\n\\",
        "V_NEWLINES": "line1\nline2\n\n",
        "V_UNICODE": "héllo wörld ✓ 日本",
    }
    config = write_config(tmp_path, f"""
        values = {values!r}
        server = goal.ssh("server", host=goal.args["host"], workspace={str(remote_ws)!r},
                          env={{"V_SPACES": values["V_SPACES"]}})
        goal.setEnv("V_QUOTES", values["V_QUOTES"])
        script = "; ".join(f'printf %s "${{name}}" > {{name}}.txt' for name in values)
        server.run(script, env={{k: v for k, v in values.items() if k not in ("V_SPACES", "V_QUOTES")}},
                   work_relpath="env").sync()
        server.run(["printf", "%s|%s|%s", "$PARALLUX_RUNNER", "a b", "it's"], work_relpath="argv").sync()
        server.run('printf %s "$PARALLUX_RUNNER $PARALLUX_WORK_RELPATH $PARALLUX_WORK_DIR"',
                   work_relpath="vars").sync()
    """)
    done = run_cli(sshd_server, config)
    assert done.returncode == 0, done.stderr
    for name, value in values.items():
        assert (remote_ws / "env" / f"{name}.txt").read_bytes() == value.encode(), name
    assert (remote_ws / "argv" / "stdout.txt").read_text() == "$PARALLUX_RUNNER|a b|it's"
    assert (remote_ws / "vars" / "stdout.txt").read_text() == f"server vars {remote_ws / 'vars'}"


def test_SshRunner_binds_cores_with_the_remote_numactl(sshd_server: SshdServer, tmp_path: Path,
                                                      remote_ws: Path) -> None:
    config = write_config(tmp_path, f"""
        server = goal.ssh("server", host=goal.args["host"], workspace={str(remote_ws)!r}, core_pool=[0, 1])
        print(server.max_jobs, server.configured_cores())
        for index in range(4):
            server.run('printf "%s %s" "$PARALLUX_CORES" "$(grep Cpus_allowed_list /proc/self/status | cut -f2)"',
                       work_relpath=f"c{{index}}")
    """)
    done = run_cli(sshd_server, config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{os.cpu_count()} [0, 1]"
    for index in range(4):
        leased, allowed = (remote_ws / f"c{index}" / "stdout.txt").read_text().split()
        assert leased == allowed and leased in ("0", "1")
        assert f"--physcpubind={leased} --localalloc" in (remote_ws / f"c{index}" / "command.txt").read_text()


def test_SshRunner_timeout_stops_the_remote_process_tree(sshd_server: SshdServer, tmp_path: Path,
                                                         remote_ws: Path, mark: str) -> None:
    config = write_config(tmp_path, f"""
        server = goal.ssh("server", host=goal.args["host"], workspace={str(remote_ws)!r})
        result = server.run("sleep 1000 & sleep 1000", timeout=1, check=False,
                            env={{"{MARK_VAR}": "{mark}"}}).sync()
        print(result.status, result.returncode)
    """)
    started = time.monotonic()
    done = run_cli(sshd_server, config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "timeout"
    assert time.monotonic() - started < 15
    assert marked_pids(mark) == []


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGKILL, -signal.SIGKILL)])
def test_SshRunner_interrupted_or_killed_parallux_leaves_nothing_remote(
        sshd_server: SshdServer, tmp_path: Path, remote_ws: Path, mark: str, signum: int, status: int) -> None:
    config = write_config(tmp_path, f"""
        server = goal.ssh("server", host=goal.args["host"], workspace={str(remote_ws)!r})
        for index in range(3):
            goal.schd("sleep 1000 & sleep 1000", env={{"{MARK_VAR}": "{mark}"}})
        goal.issue().sync()
    """)
    process = start_cli(sshd_server, config)
    try:
        wait_for(lambda: len(marked_pids(mark)) >= 6, 20, "the remote commands to start")
        process.send_signal(signum)
        process.wait(CLI_TIMEOUT)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == status
    wait_for(lambda: marked_pids(mark) == [], 10, "every remote command to be stopped")


# -- connections ---------------------------------------------------------------------------------------------

def connection_cases(srv: SshdServer, tmp_path: Path) -> dict[str, tuple[str, str]]:
    """case -> (goal.ssh keyword arguments, a phrase the error must contain)"""
    other_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(other_key)], check=True)
    empty_known_hosts = tmp_path / "empty_known_hosts"
    empty_known_hosts.write_text("")
    direct = f"host='127.0.0.1', port={srv.port}, user={srv.user!r}, ssh_config=None"
    return {
        "refused": (f"host='127.0.0.1', port={free_port()}, user={srv.user!r}", "connection refused"),
        "bad key": (f"{direct}, identity_file={str(other_key)!r}, known_hosts={str(srv.known_hosts)!r}",
                    "authentication failed"),
        # the hint adds the key to the file the runner was given, not to ~/.ssh/known_hosts
        "unknown host key": (f"host={HOST_ALIAS!r}, known_hosts={str(empty_known_hosts)!r}",
                             f"host key is not trusted (Host key is not trusted for host 127.0.0.1): it is not in "
                             f"known_hosts ({empty_known_hosts}). Check the key and add it, e.g. with `ssh-keyscan "
                             f"-p {srv.port} 127.0.0.1 >> {empty_known_hosts}`"),
        "missing python": (f"host={HOST_ALIAS!r}, python='/nonexistent/python3'",
                           "no Python interpreter '/nonexistent/python3'"),
    }


@pytest.mark.parametrize("case", ["refused", "bad key", "unknown host key", "missing python"])
def test_SshRunner_connection_errors_are_clear_config_errors(sshd_server: SshdServer, tmp_path: Path,
                                                             case: str) -> None:
    arguments, phrase = connection_cases(sshd_server, tmp_path)[case]
    config = write_config(tmp_path, f"""
        goal.ssh("server", {arguments})
        goal.run("echo never")
    """)
    done = run_cli(sshd_server, config)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert phrase in done.stderr
    assert "RunnerError: ssh runner 'server' (" in done.stderr
    assert "127.0.0.1:" in done.stderr and f"{sshd_server.user}@" in done.stderr
    assert "Traceback" not in done.stderr and "trio" not in done.stderr
    assert not (tmp_path / "never").exists()


def proxy_ssh_config(srv: SshdServer, tmp_path: Path, proxies: dict[str, str]) -> Path:
    """An ssh config with the test server's Host block plus, per alias, the same block behind a ProxyCommand
    or ProxyJump line (``{alias: line}``)."""
    block = srv.ssh_config.read_text()
    path = tmp_path / "proxy_ssh_config"
    text = block
    for alias, line in proxies.items():
        text += "\n" + block.replace(f"Host {HOST_ALIAS}", f"Host {alias}", 1).rstrip("\n") + "\n    " \
            + line + "\n"
    path.write_text(text)
    return path


def proxy_processes(ssh_config: Path) -> list[int]:
    """Live processes whose command line names this (per-test) ssh config: the ProxyCommands it started."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and str(ssh_config).encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            continue
    return found


def test_SshRunner_connects_through_a_proxy_command_or_jump(sshd_server: SshdServer, tmp_path: Path,
                                                          remote_ws: Path) -> None:
    # The ProxyCommand is OpenSSH's own client (ssh -W) through the test server to the test server; its
    # command line names the inner config, so it can be looked for after the run.
    inner = tmp_path / "inner_ssh_config"
    inner.write_text(sshd_server.ssh_config.read_text())
    used = tmp_path / "proxy-used"
    ssh_config = proxy_ssh_config(sshd_server, tmp_path, {
        "via-command": f"ProxyCommand sh -c 'echo >> {used}; exec {SSH} -F {inner} -W %h:%p {HOST_ALIAS}'",
        "via-jump": f"ProxyJump {HOST_ALIAS}",
    })
    config = write_config(tmp_path, f"""
        alias = goal.args["alias"]
        server = goal.ssh(alias, host=alias, workspace={str(remote_ws)!r}, ssh_config={str(ssh_config)!r})
        print(server.run("echo $PARALLUX_RUNNER", work_relpath=alias).sync().read_stdout().strip())
    """)
    for alias in ("via-command", "via-command", "via-command", "via-jump"):  # (that race was lost about 1 in 2)
        done = run_cli(sshd_server, config, f"alias={alias}")
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{alias}\n"
        # asyncssh would run the ProxyCommand through trio-asyncio's child watcher, whose thread reported the
        # command's exit to a Trio run that had ended: "Exception in thread waitpid_...", a traceback
        assert "Traceback" not in done.stderr and "Exception" not in done.stderr
        assert proxy_processes(inner) == []
    assert used.read_text() == "\n" * 3  # each via-command run went through its ProxyCommand


def test_setRunner_connects_the_hosts_it_names_at_once(sshd_server: SshdServer, tmp_path: Path) -> None:
    # setRunner() with several new names creates goal.ssh(name, host=name) for each, connecting them all at
    # once. Each alias's ProxyCommand notes when it started and, 2 s later, when it went on to connect:
    # connected one after another, a connection would start only after the previous one was through.
    inner = tmp_path / "inner_ssh_config"
    inner.write_text(sshd_server.ssh_config.read_text())
    marks = tmp_path / "marks"
    marks.mkdir()
    proxy = (f"ProxyCommand sh -c 'date +%%s.%%N > {marks}/start-%n; sleep 2; date +%%s.%%N > {marks}/go-%n; "
             f"exec {SSH} -F {inner} -W %h:%p {HOST_ALIAS}'")
    names = ["srv-a", "srv-b", "srv-c"]
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        proxy_ssh_config(sshd_server, tmp_path, {name: proxy for name in names}).read_text()
        + "\nHost srv-down\n    HostName 127.0.0.1\n    Port " + str(free_port()) + "\n")
    config = write_config(tmp_path, f"""
        import parallux
        try:
            goal.setRunner([*{names!r}, "srv-down"])
        except parallux.RunnerError as exc:
            print("error:", exc)
        goal.setRunner({names!r})  # the three that connected are runners now: no second connection
        for name in {names!r}:
            goal.schd("echo $PARALLUX_RUNNER", work_relpath=name, runner=name)
        print(sorted(r.read_stdout().strip() for r in goal.issue().sync()))
    """)
    done = run_cli(sshd_server, config, env=dict(sshd_server.client_env(), HOME=str(home)))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("error: ssh runner 'srv-down' (") and "connection refused" in lines[0]
    assert lines[1] == str(names)
    starts = [float((marks / f"start-{name}").read_text()) for name in names]
    goes = [float((marks / f"go-{name}").read_text()) for name in names]
    assert max(starts) < min(goes), (starts, goes)
    assert len(list(marks.iterdir())) == 6  # one connection each: setRunner() did not connect them again


def test_SshRunner_reports_a_failing_proxy_command_clearly(sshd_server: SshdServer, tmp_path: Path) -> None:
    ssh_config = proxy_ssh_config(sshd_server, tmp_path, {
        "via-failing": "ProxyCommand sh -c 'echo bastion unreachable >&2; exit 255'",
        "via-missing": "ProxyCommand /nonexistent/proxy %h %p",
    })
    for alias, phrase in (("via-failing", "`sh -c 'echo bastion unreachable >&2; exit 255'` exited with "
                                          "status 255: bastion unreachable"),
                          ("via-missing", "cannot start the ssh config's ProxyCommand "
                                          "`/nonexistent/proxy 127.0.0.1 "
                                          f"{sshd_server.port}`: No such file or directory")):
        config = write_config(tmp_path, f"""
            goal.ssh("server", host={alias!r}, ssh_config={str(ssh_config)!r})
            goal.run("echo never")
        """)
        done = run_cli(sshd_server, config)
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert f"RunnerError: ssh runner 'server' ({sshd_server.user}@127.0.0.1:{sshd_server.port}, " \
               f"Host {alias!r} in the ssh config): cannot connect: " in done.stderr
        assert phrase in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def _launcher_exe_config(tmp_path: Path, remote_ws: Path, pythons: tuple[str, ...] | None) -> Path:
    """A config whose one command prints the executable of its launcher (the parent of its ``sh``)."""
    patch = (f"import parallux._transports._ssh._bootstrap as bootstrap\nbootstrap.DEFAULT_PYTHONS = {pythons!r}\n"
             if pythons else "")
    return write_config(tmp_path, patch + textwrap.dedent(f"""
        server = goal.ssh("server", host=goal.args["host"], workspace={str(remote_ws)!r})
        print(server.run("readlink /proc/$PPID/exe").sync().read_stdout().strip())
    """))


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs /usr/bin/python3")
def test_SshRunner_starts_the_launcher_with_usr_bin_python3_by_default(sshd_server: SshdServer,
                                                                        tmp_path: Path, remote_ws: Path) -> None:
    # python3 on a login PATH is often a version manager's shim (pyenv's costs ~0.1 s per start)
    done = run_cli(sshd_server, _launcher_exe_config(tmp_path, remote_ws, None))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == os.path.realpath("/usr/bin/python3")


def test_SshRunner_falls_back_to_python3_when_the_first_interpreter_fails(sshd_server: SshdServer,
                                                                          tmp_path: Path, remote_ws: Path) -> None:
    done = run_cli(sshd_server, _launcher_exe_config(tmp_path, remote_ws, ("/nonexistent/python3", "python3")))
    assert done.returncode == 0, done.stderr
    assert os.path.basename(done.stdout.strip()).startswith("python3")
    assert not done.stdout.strip().startswith("/nonexistent")


def test_SshRunner_reports_every_interpreter_tried_when_none_starts(sshd_server: SshdServer, tmp_path: Path,
                                                                 remote_ws: Path) -> None:
    done = run_cli(sshd_server, _launcher_exe_config(tmp_path, remote_ws, ("/nonexistent/a", "/nonexistent/b")))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "no Python interpreter '/nonexistent/b'" in done.stderr
    assert "(tried before: '/nonexistent/a': cannot start the launcher: no Python interpreter" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not _cpu_has_aes(), reason="the CPU has no AES instructions: asyncssh's order stays")
def test_SshRunner_prefers_aes_gcm_unless_the_ssh_config_names_ciphers(sshd_server: SshdServer,
                                                                      tmp_path: Path, remote_ws: Path) -> None:
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(sshd_server.ssh_config.read_text() + "\nHost *\n    Ciphers aes128-ctr\n")
    config = write_config(tmp_path, f"""
        default = goal.ssh("default", host=goal.args["host"], workspace={str(remote_ws)!r})
        chosen = goal.ssh("chosen", host=goal.args["host"], workspace={str(remote_ws)!r},
                          ssh_config={str(ssh_config)!r})
        for runner in (default, chosen):
            print(runner.name, runner._seat.transport._conn.get_extra_info("send_cipher"))
    """)
    done = run_cli(sshd_server, config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["default aes256-gcm@openssh.com", "chosen aes128-ctr"]


def test_SshRunner_connect_timeout_when_the_server_never_answers(sshd_server: SshdServer,
                                                                 tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # the kernel completes the TCP handshake; nobody ever says a word
        port = silent.getsockname()[1]
        config = write_config(tmp_path, f"""
            goal.ssh("server", host="127.0.0.1", port={port}, user="nobody", connect_timeout=0.5)
        """)
        started = time.monotonic()
        done = run_cli(sshd_server, config)
    assert done.returncode == 2, done.stderr
    assert f"nobody@127.0.0.1:{port}" in done.stderr and "no answer within connect_timeout=0.5 s" in done.stderr
    assert time.monotonic() - started < 10


def test_SshRunner_ctrl_c_while_connecting_stops_at_once(sshd_server: SshdServer, tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        config = write_config(tmp_path, f"""
            goal.ssh("server", host="127.0.0.1", port={silent.getsockname()[1]}, connect_timeout=60)
        """)
        process = start_cli(sshd_server, config)
        try:
            time.sleep(1.5)  # connecting: the silent server never sends its banner
            interrupted = time.monotonic()
            process.send_signal(signal.SIGINT)
            process.wait(CLI_TIMEOUT)
        finally:
            process.kill()
            process.communicate()
    assert process.returncode == 130
    assert time.monotonic() - interrupted < 5


def test_SshRunner_authenticates_with_the_agent(sshd_server: SshdServer, tmp_path: Path,
                                                remote_ws: Path) -> None:
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(socket_path.exists, 10, "ssh-agent to listen")
        env = sshd_server.client_env()
        env["SSH_AUTH_SOCK"] = str(socket_path)
        subprocess.run(["ssh-add", "-q", str(sshd_server.client_key)], env=env, check=True,
                       capture_output=True, timeout=20)
        config = write_config(tmp_path, f"""
            server = goal.ssh("server", host="127.0.0.1", port={sshd_server.port}, user={sshd_server.user!r},
                              ssh_config=None, known_hosts={str(sshd_server.known_hosts)!r},
                              workspace={str(remote_ws)!r})
            print(server.run("echo by agent", work_relpath="w").sync().read_stdout().strip())
        """)
        done = run_cli(sshd_server, config, env=env)
    finally:
        agent.kill()
        agent.wait()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "by agent"


def test_SshRunner_rejects_unknown_options_naming_them(sshd_server: SshdServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, """
        goal.ssh("server", host=goal.args["host"], identity_fil="x", compresion=True)
    """)
    done = run_cli(sshd_server, config)
    assert done.returncode == 2
    assert "ConfigError" in done.stderr and "'compresion', 'identity_fil'" in done.stderr


def test_SshRunner_honours_an_explicit_ssh_config(sshd_server: SshdServer, tmp_path: Path,
                                                  remote_ws: Path) -> None:
    ssh_config = tmp_path / "elsewhere_config"
    ssh_config.write_text(
        sshd_server.ssh_config.read_text().replace(f"Host {HOST_ALIAS}", "Host only-in-elsewhere"))
    env = sshd_server.client_env()
    env["HOME"] = str(tmp_path)  # no ~/.ssh/config there: only ssh_config= can resolve the alias
    config = write_config(tmp_path, f"""
        server = goal.ssh("server", host="only-in-elsewhere", ssh_config={str(ssh_config)!r},
                          workspace={str(remote_ws)!r})
        print(server.run("echo via config", work_relpath="w").sync().read_stdout().strip())
    """)
    done = run_cli(sshd_server, config, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "via config"


def test_SshRunner_dry_run_opens_no_connection(sshd_server: SshdServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, f"""
        server = goal.ssh("server", host="127.0.0.1", port={free_port()}, max_jobs=2)
        goal.setRunner(server)
        goal.schd("echo one", work_relpath="one")
        print([r.status for r in goal.issue().sync()], server.logical_core_count())
    """)
    done = subprocess.run([sys.executable, "-m", "parallux", "--dry-run", str(config)], cwd=tmp_path,
                          env=sshd_server.client_env(), capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert not THIRD_PARTY_WARNING.search(done.stderr), done.stderr
    assert "~/parallux/one" in done.stdout and "['planned'] None" in done.stdout


# -- a connection that drops -----------------------------------------------------------------------------------

def dropping_config(tmp_path: Path, remote_ws: Path, mark: str, ssh_extra: str = "") -> Path:
    """(reconnect=0: a dropped connection is not tried again; see test_ssh_reconnect.py for that.)"""
    return write_config(tmp_path, f"""
        import json
        server = goal.ssh("server", host=goal.args["host"], workspace={str(remote_ws)!r}, max_jobs=3,
                          reconnect=0 {ssh_extra})
        local = goal.local(workspace={str(tmp_path / 'local-ws')!r}, max_jobs=2)
        goal.setRunner([server, local])
        handles = [server.run("echo up > up; sleep 1000", check=False, env={{"{MARK_VAR}": "{mark}"}})
                   for _ in range(5)]
        handles += [local.run("sleep 2; echo fine") for _ in range(2)]
        results = [h.sync() for h in handles]
        later = local.run("echo after").sync()
        print(json.dumps([[r.runner_name, r.status, r.error] for r in results + [later]]))
        print(goal.runner_status(server).connected)
    """)


def check_dropped_run(done: subprocess.CompletedProcess[str], mark: str) -> None:
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    results = json.loads(lines[0])
    statuses = [status for _, status, _ in results]
    assert statuses == ["error"] * 5 + ["ok"] * 3, results
    assert all("connection lost" in error or "no runner left" in error for _, _, error in results[:5]), results
    assert sum("ssh runner 'server'" in error for _, _, error in results[:3]) == 3, results
    assert lines[1] == "False"
    wait_for(lambda: marked_pids(mark) == [], 10, "the remote launcher to stop the commands")


def test_SshRunner_killed_connection_ends_commands_with_error(sshd_server: SshdServer, tmp_path: Path,
                                                              remote_ws: Path, mark: str) -> None:
    process = start_cli(sshd_server, dropping_config(tmp_path, remote_ws, mark))
    try:
        pids = wait_for(lambda: marked_pids(mark) if len(list(remote_ws.rglob("up"))) == 3 else None, 20,
                        "three remote commands to start")
        os.kill(serving_sshd(pids[0], sshd_server), signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    check_dropped_run(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), mark)


def test_SshRunner_keepalive_detects_a_silent_connection(sshd_server: SshdServer, tmp_path: Path,
                                                         remote_ws: Path, mark: str) -> None:
    config = dropping_config(tmp_path, remote_ws, mark, ", keepalive=0.5, keepalive_count=2")
    process = start_cli(sshd_server, config)
    frozen = None
    try:
        pids = wait_for(lambda: marked_pids(mark) if len(list(remote_ws.rglob("up"))) == 3 else None, 20,
                        "three remote commands to start")
        frozen = serving_sshd(pids[0], sshd_server)
        os.kill(frozen, signal.SIGSTOP)  # the TCP connection stays up, but nothing answers any more
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        if frozen is not None:
            os.kill(frozen, signal.SIGKILL)  # the launcher below it then reads EOF and stops its commands
    check_dropped_run(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), mark)


# -- files ----------------------------------------------------------------------------------------------------

def test_SshRunner_reads_remote_outputs_and_transfers_files(sshd_server: SshdServer, tmp_path: Path,
                                                            remote_ws: Path) -> None:
    local_dir = tmp_path / "local"
    (local_dir / "tree" / "sub").mkdir(parents=True)
    (local_dir / "tree" / "sub" / "data.bin").write_bytes(bytes(range(256)) * 100)
    (local_dir / "one.txt").write_text("one\n")
    config = write_config(tmp_path, f"""
        from parallux import RunnerError
        server = goal.ssh("server", host=goal.args["host"], workspace={str(remote_ws)!r})
        result = server.run("echo out; echo err >&2", work_relpath="io").sync()
        assert result.read_stdout() == "out\\n" and result.read_stderr() == "err\\n"
        server.put({str(local_dir / 'one.txt')!r}, {str(remote_ws / 'put' / 'deep' / 'one.txt')!r})
        server.put({str(local_dir / 'tree')!r}, {str(remote_ws / 'put' / 'tree')!r})
        server.get({str(remote_ws / 'put' / 'tree')!r}, {str(tmp_path / 'back' / 'tree')!r})
        server.get({str(remote_ws / 'io' / 'stdout.txt')!r}, {str(tmp_path / 'back' / 'stdout.txt')!r})
        try:
            server.get({str(remote_ws / 'missing')!r}, {str(tmp_path / 'back' / 'missing')!r})
        except RunnerError as exc:
            print("missing:", str(exc).rsplit(": ", 1)[-1])
        server.run("echo the last words >&2; exit 3", name="fails", work_relpath="fails")
    """)
    done = run_cli(sshd_server, config)
    assert done.returncode == 1, done.stderr
    assert (remote_ws / "put" / "deep" / "one.txt").read_text() == "one\n"
    assert (tmp_path / "back" / "tree" / "sub" / "data.bin").read_bytes() == bytes(range(256)) * 100
    assert (tmp_path / "back" / "stdout.txt").read_text() == "out\n"
    assert done.stdout.strip() == f"missing: {remote_ws / 'missing'}"
    # the failure report comes after the connection closed: the stderr tail came with the exit event
    assert "command 'fails' on runner 'server' exited with status 3" in done.stderr
    assert "| the last words" in done.stderr


# -- the process around it ----------------------------------------------------------------------------------

def test_asyncio_run_in_a_config_after_an_ssh_runner_exists(sshd_server: SshdServer, tmp_path: Path,
                                                            remote_ws: Path) -> None:
    config = write_config(tmp_path, f"""
        import asyncio
        server = goal.ssh("server", host=goal.args["host"], workspace={str(remote_ws)!r})

        async def main():
            process = await asyncio.create_subprocess_exec("echo", "sub", stdout=asyncio.subprocess.PIPE)
            out, _ = await process.communicate()
            await asyncio.sleep(0.01)
            return type(asyncio.get_running_loop()).__module__, out.decode().strip()

        print(*asyncio.run(main()))
        print(*asyncio.run(main()))
        print(server.run("echo still here", work_relpath="after").sync().read_stdout().strip())
    """)
    done = run_cli(sshd_server, config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["asyncio.unix_events sub", "asyncio.unix_events sub", "still here"]


def test_SshRunner_skips_what_a_login_shell_prints_before_the_launcher(tmp_path: Path) -> None:
    srv = start_sshd(tmp_path / "sshd", bare_login_shell=True)
    try:
        assert srv.bare_home is not None
        for dotfile in (".bashrc", ".profile"):
            (srv.bare_home / dotfile).write_text('echo "welcome to the machine"; echo \'{"ev": "noise"}\'\n')
        config = write_config(tmp_path, f"""
            server = goal.ssh("server", host=goal.args["host"], workspace={str(tmp_path / 'ws')!r})
            print(server.run("echo clean", work_relpath="w").sync().read_stdout().strip())
        """)
        done = run_cli(srv, config)
    finally:
        srv.stop()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "clean"


def test_example_ssh_runs_against_the_test_server(sshd_server: SshdServer, tmp_path: Path) -> None:
    example = REPO / "examples" / "ssh.py"
    assert example.read_text().startswith("#!/usr/bin/env parallux\n#")
    done = subprocess.run(
        [sys.executable, "-m", "parallux", str(example), "--", f"host={HOST_ALIAS}",
         f"workspace={tmp_path / 'remote'}", f"local_workspace={tmp_path / 'local'}"],
        cwd=tmp_path, env=sshd_server.client_env(), capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert {line.split()[0] for line in done.stdout.splitlines() if line.startswith("runner=")} == \
        {"runner=local", "runner=server-a"}
