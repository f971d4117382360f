"""Files on runners: put, get, goal.put and the readers, through the launcher's own channel.

The SSH tests run against the test sshd, which has no SFTP subsystem (tests/sshd.py): every byte goes
through the launcher. Its "remote" host is this machine, so a test looks at the remote files directly.
Configs run in the real CLI; the quick check, the frames and the flow control are also tested as plain
code, with an in-memory launcher where it matters how many frames are in flight.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing

from parallux import _launcher, _transfer
from parallux._launcher import Files, Frames
from parallux._progress import PlainReporter, Progress
from parallux._protocol import LauncherClient
from parallux._quickcheck import Entry, plan, same_time
from parallux._transfer import Transfer
from tests.sshd import SshdServer
from tests.test_ssh import run_cli, serving_sshd, start_cli, wait_for, write_config

KINDS = ("local", "ssh")


def runner_line(kind: str, workspace: Path, name: str = "runner", extra: str = "") -> str:
    if kind == "local":
        return f"{name} = goal.local({name!r}, workspace={str(workspace)!r}{extra})"
    return f"{name} = goal.ssh({name!r}, host=goal.args['host'], workspace={str(workspace)!r}{extra})"


def tree_state(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything a copy must keep: kind, mode, mtime (files, dirs) and contents or link target."""
    state: dict[str, tuple[Any, ...]] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        rel = str(path.relative_to(root))
        info = path.lstat()
        if path.is_symlink():
            state[rel] = ("l", os.readlink(path))
        elif path.is_dir():
            state[rel] = ("d", stat.S_IMODE(info.st_mode), info.st_mtime_ns)
        else:
            state[rel] = ("f", stat.S_IMODE(info.st_mode), info.st_mtime_ns, path.read_bytes())
    return state


def make_tree(root: Path) -> Path:
    """Modes, a symlink (and a dangling one), names that are not ASCII or not even UTF-8, an empty file,
    a file bigger than one frame, nested directories with their own modes."""
    (root / "bin").mkdir(parents=True)
    (root / "data" / "deep").mkdir(parents=True)
    tool = root / "bin" / "tool"
    tool.write_text("#!/bin/sh\necho tool ran\n")
    tool.chmod(0o755)
    (root / "data" / "private").write_bytes(b"secret\n")
    (root / "data" / "private").chmod(0o600)
    (root / "data" / "café ünïcode.txt").write_text("non-ASCII name\n")
    (root / "data" / os.fsdecode(b"raw-\xff-byte")).write_bytes(b"a name that is not UTF-8\n")
    (root / "data" / "empty").write_bytes(b"")
    (root / "data" / "deep" / "big.bin").write_bytes(os.urandom(1_300_000))  # more than two frames
    (root / "data" / "deep").chmod(0o750)
    (root / "link").symlink_to("bin/tool")
    (root / "dangling").symlink_to("no/such/file")
    for index, path in enumerate(sorted(root.rglob("*"), reverse=True)):  # distinct mtimes, children first
        os.utime(path, ns=(1_600_000_000_000_000_000 + index * 1_234_567, 1_600_000_000_000_000_000 + index),
                 follow_symlinks=False)
    return root


def leftovers(root: Path) -> list[Path]:
    """Temporary files a transfer left behind."""
    return [path for path in root.rglob(".*.parallux")] if root.exists() else []


def run(srv: SshdServer, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(srv, config, *args, timeout=120)


# -- the quick check and the frames, as plain code -------------------------------------------------------

def entry(rel: str, kind: str = "f", size: int = 3, mtime: int = 5_000_000_000, mode: int = 0o644,
          target: str | None = None) -> Entry:
    return Entry(rel, kind, size, mtime, mode, target)


def test_plan_skips_what_matches_and_sends_what_changed() -> None:
    source = [entry("", "d", 0, mode=0o755), entry("same"), entry("newer", mtime=6_000_000_000),
              entry("bigger", size=4), entry("mode", mode=0o755), entry("new"),
              entry("sub", "d", 0, mode=0o700), entry("sub/x"), entry("link", "l", 0, target="same")]
    target = {"": entry("", "d", 0, mode=0o755), "same": entry("same"), "newer": entry("newer"),
              "bigger": entry("bigger"), "mode": entry("mode"), "link": entry("link", "l", 0, target="same"),
              "extra": entry("extra")}
    work = plan(source, target)
    assert [f[0] for f in work.files] == ["bigger", "new", "newer", "sub/x"]
    assert work.sizes == 3 + 4 + 3 + 3
    assert work.attrs == [["mode", 0o755, 5_000_000_000]]
    assert work.links == []
    assert work.skipped == 3  # same, mode (data unchanged), link
    # "" holds changed files: its mtime is set again at the end; "sub" is new
    assert [d[0] for d in work.dirs] == ["", "sub"]
    assert not plan(source, {e.rel: e for e in source}).needed


def test_same_time_falls_back_to_seconds_only_where_a_side_keeps_seconds() -> None:
    assert same_time(1_500_000_000_123_456_789, 1_500_000_000_123_456_789)
    assert same_time(1_500_000_000_123_456_789, 1_500_000_000_000_000_000)
    assert not same_time(1_500_000_000_123_456_789, 1_500_000_000_123_456_788)
    assert not same_time(1_500_000_000_000_000_000, 1_501_000_000_000_000_000)


def test_Frames_reassembles_lines_and_payloads_however_the_stream_is_cut() -> None:
    wire = (b'{"ev":"a"}\n{"ev":"data","bytes":5}\nab\ncd\n\n{"ev":"data","bytes":0}\n'
            b'{"ev":"b"}\nnot json\n')
    expected = [({"ev": "a"}, None), ({"ev": "data", "bytes": 5}, b"ab\ncd"),
                ({"ev": "data", "bytes": 0}, b""), ({"ev": "b"}, None)]
    for size in (1, 2, 3, 7, len(wire)):
        frames = Frames()
        got = [m for i in range(0, len(wire), size) for m in frames.feed(wire[i:i + size])]
        assert got[:4] == expected, size
        assert isinstance(got[4][0], ValueError) and len(got) == 5


def test_launcher_get_sends_only_the_frames_it_was_given_credit_for(tmp_path: Path) -> None:
    # What keeps the launcher's output (and memory) bounded whatever the file size.
    (tmp_path / "big").write_bytes(b"x" * (10 * _launcher.CHUNK))
    sent: list[tuple[dict[str, Any], bytes | None]] = []
    files = Files(lambda event, payload=None: sent.append((event, payload)))
    files.handle({"op": "get", "id": 1, "root": str(tmp_path / "big"), "files": [""], "window": 2}, None)
    assert [event["ev"] for event, _ in sent] == ["data", "data"]
    files.handle({"op": "credit", "id": 1, "frames": 3}, None)
    assert len(sent) == 5 and all(len(payload or b"") == _launcher.CHUNK for _, payload in sent)
    files.handle({"op": "credit", "id": 1, "frames": 100}, None)
    assert [event["ev"] for event, _ in sent[-2:]] == ["data", "end"] and len(sent) == 11
    assert sent[-2][0]["parts"] == [[0, _launcher.CHUNK, True]]


async def test_put_keeps_at_most_a_window_of_frames_unacknowledged(tmp_path: Path) -> None:
    source = tmp_path / "big"
    source.write_bytes(b"y" * (3 * _transfer.PUT_WINDOW * _launcher.CHUNK))
    to_launcher, from_client = trio.testing.memory_stream_pair()
    client = LauncherClient(to_launcher, to_launcher, "test runner")
    seat = SimpleNamespace(client=client, name="test", describe=lambda: "runner 'test'", workspace="/remote",
                           wait_up=lambda reconnected_only=False: trio.lowlevel.checkpoint())
    seen: list[dict[str, Any]] = []

    async def launcher_that_never_acks() -> None:
        frames = Frames()
        while chunk := await from_client.receive_some():
            for request, _ in frames.feed(chunk):
                seen.append(request)
                if request["op"] == "walk":  # nothing there yet
                    line = {"ev": "end", "id": request["id"], "error": "No such file", "errno": 2}
                    await from_client.send_all(json.dumps(line).encode() + b"\n")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._write_loop)
        nursery.start_soon(client._read_loop, nursery.cancel_scope)
        nursery.start_soon(launcher_that_never_acks)
        nursery.start_soon(_transfer.put, seat, str(source), "/remote/big", lambda transfer: None)
        with trio.fail_after(10):
            while len(seen) < 2 + _transfer.PUT_WINDOW:
                await trio.sleep(0.01)
        await trio.sleep(0.2)  # (any worker thread still reading ends)
        await trio.testing.wait_all_tasks_blocked()
        assert [r["op"] for r in seen] == ["walk", "put"] + ["data"] * _transfer.PUT_WINDOW
        nursery.cancel_scope.cancel()


def test_plain_progress_shows_a_transfer_that_took_more_than_a_second() -> None:
    progress = Progress()
    stream = io.StringIO()
    PlainReporter(progress, verbose=False, quiet=False, interval=0, stream=stream)
    quick = Transfer(files_sent=1, bytes_sent=10, _what="put /a -> r:/a")
    quick._ended = quick._started + 0.1
    slow = Transfer(files_sent=3, bytes_sent=5 << 20, _what="put /b -> r:/b")
    slow._started -= 2.5
    progress.transfer(slow)
    assert progress.transfers == [slow]
    for transfer in (quick, slow):
        transfer._ended = transfer._ended or time.monotonic()
        progress.transfer(transfer)
    assert progress.transfers == []
    assert stream.getvalue().splitlines() == ["parallux: put /b -> r:/b: 3 files, 5.0 MiB in 2.5 s"]


def test_live_display_shows_a_transfer_running_for_more_than_a_second() -> None:
    from rich.console import Console

    from parallux._live import LiveReporter
    progress = Progress()
    reporter = LiveReporter(progress)
    running = Transfer(bytes_sent=1 << 20, _what="put /b -> r:/b", _bytes_total=4 << 20)
    running._started -= 1.5
    just_started = Transfer(_what="put /c -> r:/c")
    for transfer in (running, just_started):
        progress.transfer(transfer)
    out = io.StringIO()
    Console(file=out, width=200).print(reporter.render())
    assert "put /b -> r:/b: 1.0 MiB of 4.0 MiB, 1.5 s" in out.getvalue()
    assert "/c" not in out.getvalue()


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


@pytest.fixture
def unprivileged_launcher() -> Any:
    """A python= for an SSH runner whose launcher runs as nobody (the tests run as root, whom no permission
    denies anything), and a directory outside the tests' private tmp dirs for it to work in."""
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a launcher as nobody")
    base = Path(tempfile.mkdtemp(prefix="parallux-perm-", dir="/tmp"))
    try:
        base.chmod(0o755)
        python = base / "python-as-nobody"
        python.write_text('#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups '
                          '/usr/bin/python3 "$@"\n')  # (not a Python under /root, which nobody cannot run)
        python.chmod(0o755)
        (base / "ws").mkdir(mode=0o777)
        (base / "ws").chmod(0o777)
        yield base, python
    finally:
        shutil.rmtree(base, ignore_errors=True)


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
    tests/test_ssh_reconnect.py.)"""
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
