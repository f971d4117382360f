"""Transfers that never write where they must not (SPEC 20): a link in the destination is replaced, as
``rsync -a`` does, never written through; a source file that changes while it is sent is resent or reported,
never left torn under its final name; a put leaves a work dir's ``.history/`` and ``.parallux-lock`` behind.

Through the real CLI on a local and an SSH runner (the test sshd's "remote" host is this machine, so a test
looks at both sides directly), and the reader and writer of the frames as plain code where a file's change
must fall between two frames exactly.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from parallux._launcher import RESENDS
from tests.sshd import SshdServer
from tests.ssh_cli import write_config
from tests.transfer_trees import KINDS, T0, leftovers, make_tree, run, runner_line, tree_state
from tests.transfer_trees import unprivileged_launcher  # noqa: F401 (a fixture)


def outside_dir(tmp_path: Path) -> Path:
    """A directory the transfers must never touch, with a file in it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not yours\n")
    os.utime(outside / "keep.txt", ns=(T0, T0))
    os.utime(outside, ns=(T0, T0))
    return outside


def full_state(path: Path) -> object:
    """tree_state of a directory, or kind, mode, mtime and contents of a file."""
    if path.is_dir():
        return tree_state(path)
    info = path.lstat()
    return (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_mtime_ns, path.read_bytes())


# -- a link in the destination ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_put_and_get_replace_a_link_to_a_directory_outside(sshd_server: SshdServer, tmp_path: Path,
                                                           kind: str) -> None:
    outside = outside_dir(tmp_path)
    before = tree_state(outside)
    source = make_tree(tmp_path / "src")
    put_to = tmp_path / "ws" / "tree"
    put_to.mkdir(parents=True)
    (put_to / "data").symlink_to(outside)  # where the source has a directory (with a directory in it)
    shutil.copytree(source, tmp_path / "ws" / "there", symlinks=True)  # what the get fetches
    get_to = tmp_path / "back"
    get_to.mkdir()
    (get_to / "data").symlink_to(outside)
    config = write_config(tmp_path, f"""
        {runner_line(kind, tmp_path / "ws")}
        print(runner.put({str(source)!r}, "tree").files_sent, runner.get("there", {str(get_to)!r}).files_sent)
    """)
    done = run(sshd_server, config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["8", "8"]
    assert tree_state(outside) == before
    for copy in (put_to, get_to):
        assert not (copy / "data").is_symlink()
        assert tree_state(copy) == tree_state(source)
        assert leftovers(copy) == []


@pytest.mark.parametrize("kind", KINDS)
def test_put_and_get_replace_a_link_to_a_file_outside(sshd_server: SshdServer, tmp_path: Path,
                                                      kind: str) -> None:
    # The links point at a file that matches the source's in size and mtime, only not in mode: followed, the
    # quick check would take the outside file for the copy and chmod it. In the trees, a link to it also
    # stands where the source has a directory.
    outside = outside_dir(tmp_path)
    (outside / "keep.txt").chmod(0o600)
    before = tree_state(outside)
    source = tmp_path / "src"
    (source / "dir").mkdir(parents=True)
    (source / "dir" / "in.txt").write_text("in\n")
    (source / "keep.txt").write_text("not yours\n")
    for path in (source / "keep.txt", source / "dir" / "in.txt", source / "dir"):
        os.utime(path, ns=(T0, T0))
    (tmp_path / "ws").mkdir()
    shutil.copy2(source / "keep.txt", tmp_path / "ws" / "there.txt")
    put_tree, get_tree = tmp_path / "ws" / "tree", tmp_path / "back-tree"
    for tree in (put_tree, get_tree):
        tree.mkdir()
        (tree / "keep.txt").symlink_to(outside / "keep.txt")
        (tree / "dir").symlink_to(outside / "keep.txt")
    put_file, get_file = tmp_path / "ws" / "file.txt", tmp_path / "back.txt"
    for link in (put_file, get_file):
        link.symlink_to(outside / "keep.txt")
    config = write_config(tmp_path, f"""
        {runner_line(kind, tmp_path / "ws")}
        print(runner.put({str(source / "keep.txt")!r}, "file.txt").files_sent,
              runner.get("there.txt", {str(get_file)!r}).files_sent,
              runner.put({str(source)!r}, "tree").files_sent,
              runner.get("tree", {str(get_tree)!r}).files_sent)
    """)
    done = run(sshd_server, config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1", "2", "2"]
    assert tree_state(outside) == before
    for copy in (put_file, get_file, put_tree / "keep.txt", get_tree / "keep.txt"):
        assert full_state(copy) == full_state(source / "keep.txt"), copy
    for tree in (put_tree, get_tree):
        assert full_state(tree / "dir") == full_state(source / "dir")
    assert leftovers(tmp_path / "ws") == [] and leftovers(get_tree) == []


def test_a_mode_is_set_even_where_its_owner_may_not_read(sshd_server: SshdServer, tmp_path: Path,
                                                         unprivileged_launcher: Any) -> None:
    # Not to follow a link, a mode is set through a descriptor opened with O_NOFOLLOW; a file its owner (here:
    # nobody) may not read cannot be opened so, and gets its mode by name once lstat showed no link.
    base, python = unprivileged_launcher
    source = tmp_path / "src"
    source.mkdir()
    (source / "w").write_text("write-only\n")
    (source / "w").chmod(0o200)
    config = write_config(tmp_path, f"""
        import os
        {runner_line("ssh", base / "ws", extra=f", python={str(python)!r}")}
        print(runner.put({str(source)!r}, "tree").files_sent)
        os.chmod({str(source / "w")!r}, 0o240)  # its mode alone: still not readable by its owner
        print(runner.put({str(source)!r}, "tree").files_sent, runner.put({str(source / "w")!r}, "w").files_sent)
        os.chmod({str(source / "w")!r}, 0o640)
        print(runner.put({str(source / "w")!r}, "w").files_sent)
    """)
    done = run(sshd_server, config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "0", "1", "0"]
    assert stat.S_IMODE((base / "ws" / "tree" / "w").stat().st_mode) == 0o240
    assert stat.S_IMODE((base / "ws" / "w").stat().st_mode) == 0o640


# -- a source that changes while it is sent -----------------------------------------------------------------

SHRUNK = 100_000  # bytes a source keeps: less than one frame, so the copy cut short can never look right


@pytest.mark.parametrize("direction", ("put", "get"))
@pytest.mark.parametrize("kind", KINDS)
def test_a_source_that_shrinks_while_it_is_sent_is_sent_again(sshd_server: SshdServer, tmp_path: Path,
                                                              kind: str, direction: str) -> None:
    # A thread truncates the source as soon as the copy's temporary file shows that the transfer is under
    # way. If the whole file was read before that (the copy holds all of it), the race was missed: again.
    ws = tmp_path / "ws"
    ws.mkdir()
    source, copy = (tmp_path / "big.bin", ws / "big.bin") if direction == "put" else \
        (ws / "big.bin", tmp_path / "back" / "big.bin")
    call = (f"runner.put({str(source)!r}, 'big.bin')" if direction == "put" else
            f"runner.get('big.bin', {str(copy)!r})")
    config = write_config(tmp_path, f"""
        import os, threading, time
        {runner_line(kind, ws)}
        source, copy = {str(source)!r}, {str(copy)!r}
        block = os.urandom(1 << 20)

        def shrink_once_under_way(stop):
            place, prefix = os.path.dirname(copy), "." + os.path.basename(copy) + "."
            while not stop.is_set():
                if os.path.isdir(place) and any(n.startswith(prefix) for n in os.listdir(place)):
                    os.truncate(source, {SHRUNK})
                    return
                time.sleep(0.001)

        for attempt in range(20):
            with open(source, "wb") as f:
                for _ in range(32):
                    f.write(block)
            if os.path.exists(copy):
                os.unlink(copy)
            stop = threading.Event()
            shrinker = threading.Thread(target=shrink_once_under_way, args=(stop,))
            shrinker.start()
            try:
                transfer = {call}
            finally:
                stop.set()
                shrinker.join()
            with open(copy, "rb") as f:
                data = f.read()
            if data != block * 32:  # the race was hit
                with open(source, "rb") as f:
                    print(attempt, transfer.files_sent, len(data), data == f.read())
                break
        else:
            print("never hit")
    """)
    done = run(sshd_server, config)
    assert done.returncode == 0, done.stderr
    attempt, files_sent, size, same = done.stdout.split()
    assert (files_sent, size, same) == ("1", str(SHRUNK), "True"), done.stdout
    assert leftovers(ws) == [] and leftovers(copy.parent) == []


def test_a_source_that_keeps_changing_is_an_error_and_leaves_no_copy(sshd_server: SshdServer,
                                                                     tmp_path: Path) -> None:
    # A second process appends to the source all along, from before the put starts, so that every read of it
    # should see it change. Should that process be held up through one whole read (a busy machine), the put
    # succeeds with a copy of what it read: that race was missed, the put is made again.
    source = tmp_path / "log.bin"
    source.write_bytes(os.urandom(32 << 20))
    copy = tmp_path / "ws" / "log.bin"
    config = write_config(tmp_path, f"""
        import os, subprocess, sys, time
        from parallux import RunnerError
        {runner_line("ssh", tmp_path / "ws")}
        appender = subprocess.Popen([sys.executable, "-c", '''if 1:
            import time
            with open({str(source)!r}, "ab", buffering=0) as f:
                while True:
                    f.write(b"x")
                    time.sleep(0.0002)
        '''])
        try:
            while os.path.getsize({str(source)!r}) == {32 << 20}:
                time.sleep(0.01)
            for attempt in range(10):
                try:
                    runner.put({str(source)!r}, "log.bin")
                except RunnerError as exc:
                    print(exc)
                    break
                os.unlink({str(copy)!r})
            else:
                print("never an error")
        finally:
            appender.kill()
            appender.wait()
    """)
    done = run(sshd_server, config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f": Changed while it was read, {RESENDS + 1} times: {source}"), done.stdout
    assert not copy.exists() and leftovers(tmp_path / "ws") == []


# -- what a put leaves behind -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_put_never_copies_history_or_lock_files(sshd_server: SshdServer, tmp_path: Path, kind: str) -> None:
    source = tmp_path / "build"
    for where in (source, source / "job"):
        (where / ".history" / "1").mkdir(parents=True)
        (where / ".history" / "1" / "stdout.txt").write_text("an earlier run\n")
        (where / ".parallux-lock").write_text("{}\n")
        (where / "stdout.txt").write_text("kept\n")
    (source / "job" / "history").mkdir()  # (only the exact names are left out)
    (source / "job" / ".history.txt").write_text("a file\n")
    config = write_config(tmp_path, f"""
        {runner_line(kind, tmp_path / "ws")}
        goal.setRunner(runner)
        print(runner.put({str(source)!r}, "tree").files_sent, goal.put({str(source)!r}, "base")["runner"].files_sent)
    """)
    done = run(sshd_server, config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "3"]
    for copy in ("tree", "base"):
        assert sorted(str(p.relative_to(tmp_path / "ws" / copy)) for p in (tmp_path / "ws" / copy).rglob("*")) == \
            ["job", "job/.history.txt", "job/history", "job/stdout.txt", "stdout.txt"]
