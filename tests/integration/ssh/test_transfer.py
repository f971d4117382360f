"""Files on runners: put, get, goal.put and the readers, through the launcher's own channel.

The SSH tests run against the test sshd, which has no SFTP subsystem (tests/sshd.py): every byte goes
through the launcher. Its "remote" host is this machine, so a test looks at the remote files directly.
Configs run in the real CLI; the quick check, the frames and the flow control are also tested as plain
code, with an in-memory launcher where it matters how many frames are in flight.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.sshd import SshdServer
from tests.ssh_cli import serving_sshd, start_cli, wait_for, write_config
from tests.transfer_trees import KINDS, leftovers, make_tree, run, runner_line, tree_state
from tests.transfer_trees import unprivileged_launcher  # noqa: F401 (a fixture)


# -- put, get and goal.put on real runners ------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_tree_round_trips_byte_exact_with_modes_mtimes_and_symlinks(sshd_server: SshdServer, tmp_path: Path,
                                                                     kind: str) -> None:
    source = make_tree(tmp_path / "src")
    config = write_config(tmp_path, f"""
        {runner_line(kind, tmp_path / "ws")}
        sent = runner.put({str(source)!r}, "stage/tree")
        back = runner.get("stage/tree", {str(tmp_path / "back")!r})
        print(sent.files_sent, sent.files_skipped, sent.bytes_sent, back.files_sent, back.bytes_sent)
    """)
    done = run(sshd_server, config)
    assert done.returncode == 0, done.stderr
    size = sum(len(v[3]) for v in tree_state(source).values() if v[0] == "f")
    assert done.stdout.split() == ["8", "0", str(size), "8", str(size)]  # 6 files and 2 symlinks each way
    assert tree_state(tmp_path / "ws" / "stage" / "tree") == tree_state(source)
    assert tree_state(tmp_path / "back") == tree_state(source)
    assert leftovers(tmp_path / "ws") == [] and leftovers(tmp_path / "back") == []


def test_put_an_executable_then_run_it_on_the_server(sshd_server: SshdServer, tmp_path: Path) -> None:
    binary = tmp_path / "build" / "bench"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\necho bench ran with $1\n")
    binary.chmod(0o755)
    config = write_config(tmp_path, f"""
        {runner_line("ssh", tmp_path / "ws", "server")}
        print(server.put({str(binary)!r}, "bin/"))  # into bin/, under its own name
        print(server.run("$PARALLUX_WORK_DIR/../bin/bench fast", work_relpath="job").sync().read_stdout(), end="")
    """)
    done = run(sshd_server, config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Transfer(files_sent=1, files_skipped=0, bytes_sent=33)",
                                        "bench ran with fast"]
    assert stat.S_IMODE((tmp_path / "ws" / "bin" / "bench").stat().st_mode) == 0o755


def test_quick_check_skips_unchanged_files_and_resends_a_touched_one(sshd_server: SshdServer,
                                                                     tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    config = write_config(tmp_path, f"""
        import os
        {runner_line("ssh", tmp_path / "ws", "server")}
        for step in ("first", "again", "touched"):
            if step == "touched":
                os.utime({str(source / "data" / "empty")!r}, ns=(1, 1_700_000_000_000_000_000))
                os.chmod({str(source / "bin" / "tool")!r}, 0o700)  # only its mode: no data to send
            transfer = server.put({str(source)!r}, "tree")
            print(step, transfer.files_sent, transfer.files_skipped, transfer.bytes_sent)
    """)
    done = run(sshd_server, config)
    assert done.returncode == 0, done.stderr
    size = sum(len(v[3]) for v in tree_state(source).values() if v[0] == "f")
    assert done.stdout.splitlines() == [f"first 8 0 {size}", "again 0 8 0", "touched 1 7 0"]
    assert tree_state(tmp_path / "ws" / "tree") == tree_state(source)


def test_goal_put_reaches_every_runner_of_the_pool(sshd_server: SshdServer, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    config = write_config(tmp_path, f"""
        {runner_line("local", tmp_path / "ws-local", "here")}
        {runner_line("ssh", tmp_path / "ws-a", "a")}
        {runner_line("ssh", tmp_path / "ws-b", "b")}
        goal.setRunner([here, a, b])
        for name, transfer in goal.put({str(source)!r}, "base").items():
            print(name, transfer.files_sent, transfer.files_skipped)
        print(list(goal.put({str(source / "bin" / "tool")!r}, "bin/")))
    """)
    done = run(sshd_server, config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["here 8 0", "a 8 0", "b 8 0", "['here', 'a', 'b']"]
    for name in ("ws-local", "ws-a", "ws-b"):
        assert tree_state(tmp_path / name / "base") == tree_state(source)
        assert (tmp_path / name / "bin" / "tool").read_bytes() == (source / "bin" / "tool").read_bytes()


def test_results_are_read_through_the_launcher(sshd_server: SshdServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, f"""
        {runner_line("ssh", tmp_path / "ws", "server")}
        result = server.run("printf 'out\\\\n'; printf 'err\\\\n' >&2; printf '\\\\377 bad\\\\n' > made.txt",
                            work_relpath="job").sync()
        print(repr(result.read_stdout()), repr(result.read_stderr()), repr(result.read_file("made.txt")))
        print(server.read_file("job/stdout.txt"), result.stderr_tail(), result.stderr_tail_text)
        failed = server.run("for i in $(seq 2000); do echo line $i >&2; done; exit 3", check=False).sync()
        print(failed.stderr_tail(2), len(failed.stderr_tail_text) <= 4096)
    """)
    done = run(sshd_server, config)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "'out\\n' 'err\\n' '\ufffd bad\\n'"
    assert lines[1] == "b'out\\n' [] None"
    assert lines[2] == "['line 1999', 'line 2000'] True"


def test_failure_reports_show_the_stderr_tail_without_reading_files(sshd_server: SshdServer,
                                                                   tmp_path: Path) -> None:
    # The tail comes with the exit event: the report after the run needs no connection, and the stderr
    # file can even be gone by then.
    config = write_config(tmp_path, f"""
        import shutil
        {runner_line("ssh", tmp_path / "ws", "server")}
        server.run("echo the last words >&2; exit 3", name="fails", work_relpath="fails").sync()
    """)
    done = run(sshd_server, config)
    assert done.returncode == 1
    summary = done.stderr[done.stderr.index("parallux: 1 command "):]  # after the connection closed
    assert "command 'fails' on runner 'server' exited with status 3" in summary
    assert "| the last words" in summary
    record = json.loads((tmp_path / "ws" / "fails" / "result.json").read_text())
    assert "stderr_tail" not in record  # (the file is beside it)


def test_dry_run_prints_a_plan_line_per_transfer_and_copies_nothing(sshd_server: SshdServer,
                                                                    tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    config = write_config(tmp_path, f"""
        {runner_line("local", tmp_path / "ws", "here")}
        {runner_line("local", tmp_path / "ws2", "there")}
        goal.setRunner([here, there])
        print(here.put({str(source)!r}, "tree"), here.get("tree", {str(tmp_path / "back")!r}))
        print(goal.put({str(source)!r}, "base"))
        result = here.run("echo hi").sync()
        print(repr(result.read_stdout()), repr(result.read_stderr()), repr(result.read_file("x")))
    """)
    done = subprocess.run([sys.executable, "-m", "parallux", "--dry-run", str(config)], cwd=tmp_path,
                          env=sshd_server.client_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"put {source} -> here:{tmp_path / 'ws' / 'tree'}"
    assert lines[1] == f"get here:{tmp_path / 'ws' / 'tree'} -> {tmp_path / 'back'}"
    assert lines[3:5] == [f"put {source} -> here:{tmp_path / 'ws' / 'base'}",
                          f"put {source} -> there:{tmp_path / 'ws2' / 'base'}"]
    assert lines[-1] == "'' '' ''"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.py", "src"]


# -- errors -------------------------------------------------------------------------------------------------

def print_errors(calls: list[str]) -> str:
    return "".join(f"""
        try:
            {call}
        except RunnerError as exc:
            print("RunnerError:", exc)
    """ for call in calls)


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_source_is_a_runner_error_naming_runner_and_path(sshd_server: SshdServer, tmp_path: Path,
                                                                   kind: str) -> None:
    config = write_config(tmp_path, f"""
        from parallux import RunnerError
        {runner_line(kind, tmp_path / "ws")}
        {print_errors([f"runner.put({str(tmp_path / 'nothing')!r}, 'x')", "runner.get('gone', 'back')",
                       "runner.read_file('gone.txt')"])}
    """)
    done = run(sshd_server, config)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("RunnerError: ") for line in lines), lines
    assert all("runner 'runner'" in line and "No such file or directory" in line for line in lines)
    assert str(tmp_path / "nothing") in lines[0]
    assert f"{tmp_path / 'ws' / 'gone'}" in lines[1] and str(tmp_path / "ws" / "gone.txt") in lines[2]
    assert not (tmp_path / "back").exists()


def test_bad_arguments_are_config_errors(sshd_server: SshdServer, tmp_path: Path) -> None:
    for call in ("runner.put(None, 'x')", "runner.put('src', 5)", "runner.get(b'x', 'y')",
                 "runner.get('x', '')", "goal.put('src', None)", "runner.read_file(3)",
                 "runner.run('true').sync().read_file('../x')"):
        config = write_config(tmp_path, f"""
            {runner_line("local", tmp_path / "ws")}
            {call}
        """)
        done = run(sshd_server, config)
        assert done.returncode in (1, 2) and "ConfigError" in done.stderr, (call, done.stderr)
        assert "Traceback" not in done.stderr, call


def test_permission_denied_is_a_runner_error_naming_the_path(sshd_server: SshdServer, tmp_path: Path,
                                                             unprivileged_launcher: Any) -> None:
    base, python = unprivileged_launcher
    locked = base / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    (base / "root-only").write_text("secret\n")
    (base / "root-only").chmod(0o600)
    (tmp_path / "file").write_text("data\n")
    config = write_config(tmp_path, f"""
        from parallux import RunnerError
        {runner_line("ssh", base / "ws", extra=f", python={str(python)!r}")}
        {print_errors([f"runner.put({str(tmp_path / 'file')!r}, {str(locked / 'file')!r})",
                       f"runner.get({str(base / 'root-only')!r}, {str(tmp_path / 'copy')!r})"])}
    """)
    done = run(sshd_server, config)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == [f"RunnerError: ssh runner 'runner' ({sshd_server.user}@127.0.0.1:{sshd_server.port}, Host "
                     f"'parallux-test' in the ssh config): put {tmp_path / 'file'} -> {locked / 'file'}: "
                     f"Permission denied: {locked / 'file'}",
                     f"RunnerError: ssh runner 'runner' ({sshd_server.user}@127.0.0.1:{sshd_server.port}, Host "
                     f"'parallux-test' in the ssh config): get {base / 'root-only'} -> {tmp_path / 'copy'}: "
                     f"Permission denied: {base / 'root-only'}"], lines
    assert list(locked.iterdir()) == [] and not (tmp_path / "copy").exists() and leftovers(tmp_path) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A 1 MiB tmpfs to fill (root can mount; skipped where it cannot)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_on_the_runner_leaves_no_partial_file(sshd_server: SshdServer, tmp_path: Path,
                                                          small_disk: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a-small").write_bytes(b"fits\n")
    (source / "b-big").write_bytes(os.urandom(3 << 20))
    config = write_config(tmp_path, f"""
        from parallux import RunnerError
        {runner_line("ssh", tmp_path / "ws", "server")}
        {print_errors([f"server.put({str(source)!r}, {str(small_disk / 'tree')!r})"])}
    """)
    done = run(sshd_server, config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f": No space left on device: {small_disk / 'tree' / 'b-big'}"), done.stdout
    assert f"ssh runner 'server' (" in done.stdout
    assert sorted(p.name for p in (small_disk / "tree").iterdir()) == ["a-small"]  # complete, kept


@pytest.mark.parametrize("direction", ("put", "get"))
def test_a_connection_lost_mid_transfer_leaves_no_partial_file(sshd_server: SshdServer, tmp_path: Path,
                                                               direction: str) -> None:
    """(Without reconnection: with it, the transfer is made again once reconnected, see
    tests/integration/ssh/test_ssh_reconnect.py.)"""
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:  # sparse: cheap to make and to read, slow enough to send
        f.truncate(4 << 30)
    remote = tmp_path / "ws" / "big.bin"
    if direction == "put":
        call, partial = f"server.put({str(big)!r}, 'big.bin')", tmp_path / "ws"
    else:
        remote.parent.mkdir()
        os.link(big, remote)
        call, partial = f"server.get('big.bin', {str(tmp_path / 'back' / 'big.bin')!r})", tmp_path / "back"
    config = write_config(tmp_path, f"""
        import sys
        from parallux import RunnerError
        {runner_line("ssh", tmp_path / "ws", "server", ", reconnect=0")}
        print(server.facts["pid"], flush=True)
        {print_errors([call])}
    """)
    process = start_cli(sshd_server, config)
    try:
        assert process.stdout is not None
        launcher = int(process.stdout.readline())
        wait_for(lambda: [p for p in leftovers(partial) if p.stat().st_size > 1 << 20], 30,
                 "the transfer to be under way")
        os.kill(serving_sshd(launcher, sshd_server), 9)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode in (0, 1), stderr
    assert stdout.startswith("RunnerError: ssh runner 'server'") and "connection" in stdout, stdout
    assert str(big if direction == "put" else remote) in stdout
    final = remote if direction == "put" else tmp_path / "back" / "big.bin"
    assert not final.exists()
    wait_for(lambda: leftovers(partial) == [], 10, "the temporary file to be removed")


def test_a_read_only_directory_can_be_updated_by_a_later_put(sshd_server: SshdServer, tmp_path: Path,
                                                             unprivileged_launcher: Any) -> None:
    # Its mode (no write bit) is copied at the end of the first put; the second must still write into it.
    base, python = unprivileged_launcher
    source = tmp_path / "src"
    (source / "ro").mkdir(parents=True)
    (source / "ro" / "data").write_text("one\n")
    (source / "ro").chmod(0o555)
    config = write_config(tmp_path, f"""
        import os
        {runner_line("ssh", base / "ws", extra=f", python={str(python)!r}")}
        print(runner.put({str(source)!r}, "tree").files_sent)
        os.utime({str(source / "ro" / "data")!r}, ns=(1, 1_700_000_000_000_000_000))
        print(runner.put({str(source)!r}, "tree").files_sent)
    """)
    done = run(sshd_server, config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]
    assert stat.S_IMODE((base / "ws" / "tree" / "ro").stat().st_mode) == 0o555
    assert (base / "ws" / "tree" / "ro" / "data").stat().st_mtime_ns == 1_700_000_000_000_000_000
