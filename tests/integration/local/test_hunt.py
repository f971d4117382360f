"""A hostile co-user of a shared workspace, through the real CLI: odd file types (a FIFO) and links planted
where parallux reads, after the fixes of issue 19. Nothing may block parallux, its launcher or a view, and
nothing may be read through a link into a report.

A test that plants a FIFO waits for parallux (generously: a hang is what it looks for), then opens the FIFO
itself so that a blocked reader goes on and every process it started ends, and fails saying so.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

from parallux._launcher import LOCK_NAME
from tests.helpers import cli_env, run_cli, start_cli, write_config

HANG = 60  # seconds: far beyond what these few commands take on a loaded machine; only a hang reaches it

ONE = """
    from parallux import goal
    goal.setRunner([goal.local(workspace=goal.args["ws"])])
    goal.schd(goal.args["cmd"], name="a", work_relpath="a", check=False)
    for result in goal.issue().sync():
        print("RESULT", result.status, result.error)
"""


def unblock(fifos: list[Path]) -> None:
    """Open each FIFO at both ends for a moment: a reader blocked in open() goes on (and reads EOF)."""
    for fifo in fifos:
        for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
            try:
                os.close(os.open(fifo, flags))
            except OSError as exc:
                assert exc.errno in (errno.ENXIO, errno.ENOENT), exc


def finish(proc: subprocess.Popen[str], fifos: list[Path]) -> tuple[subprocess.CompletedProcess[str], bool]:
    """The process's end, and whether it hung on one of the FIFOs (then unblocked, so it ends)."""
    try:
        out, err = proc.communicate(timeout=HANG)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), False
    except subprocess.TimeoutExpired:
        for _ in range(20):
            unblock(fifos)
            try:
                out, err = proc.communicate(timeout=5)
                return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), True
            except subprocess.TimeoutExpired:
                continue
        proc.kill()
        out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), True


def run_one(tmp_path: Path, cmd: str, fifos: list[Path]) -> tuple[subprocess.CompletedProcess[str], bool]:
    write_config(tmp_path, ONE)
    proc = start_cli(tmp_path, "config.py", "--", f"ws={tmp_path / 'ws'}", f"cmd={cmd}")
    return finish(proc, fifos)


# -- the launcher ------------------------------------------------------------------------------------------

def test_a_fifo_planted_as_the_lock_of_a_work_dir_never_blocks_the_launcher(tmp_path: Path) -> None:
    lock = tmp_path / "ws" / "a" / LOCK_NAME
    lock.parent.mkdir(parents=True)
    os.mkfifo(lock)
    done, hung = run_one(tmp_path, "echo hi", [lock])
    assert not hung, "the launcher blocked opening the FIFO planted as the work dir's lock\n" + done.stderr
    assert done.returncode == 0, done.stderr
    assert "RESULT ok None" in done.stdout
    assert (tmp_path / "ws" / "a" / "stdout.txt").read_text() == "hi\n"


def test_a_command_that_leaves_a_fifo_as_its_stderr_never_blocks_the_launcher(tmp_path: Path) -> None:
    fifo = tmp_path / "ws" / "a" / "stderr.txt"  # (what a co-user may swap in while the command runs)
    done, hung = run_one(tmp_path, "rm stderr.txt && mkfifo stderr.txt && exit 3", [fifo])
    assert not hung, "the launcher blocked opening a FIFO left as stderr.txt\n" + done.stderr
    assert "RESULT failed" in done.stdout, done.stdout + done.stderr


# -- the views -------------------------------------------------------------------------------------------

def failed_silently(tmp_path: Path) -> Path:
    """A run whose one command failed with an empty stderr (so a view looks for its tail in the work dir):
    that work dir's stderr.txt, which the test then replaces."""
    done, hung = run_one(tmp_path, "exit 3", [])
    assert not hung and done.returncode == 0, done.stderr
    assert "RESULT failed" in done.stdout
    stderr = tmp_path / "ws" / "a" / "stderr.txt"
    assert stderr.read_bytes() == b""
    stderr.unlink()
    return stderr


def test_report_and_export_never_read_a_failed_commands_stderr_through_a_planted_link(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("SECRET-KEY-do-not-publish\n")
    os.symlink(secret, failed_silently(tmp_path))
    report = run_cli(tmp_path, "report", "-o", "report.html")
    assert report.returncode == 0, report.stderr
    junit = run_cli(tmp_path, "export", "--junit", "-")
    assert junit.returncode == 0, junit.stderr
    assert "SECRET" not in (tmp_path / "report.html").read_text()
    assert "SECRET" not in junit.stdout


def test_report_and_export_never_block_on_a_fifo_planted_as_a_failed_commands_stderr(tmp_path: Path) -> None:
    fifo = failed_silently(tmp_path)
    os.mkfifo(fifo)
    for args in (["report", "-o", "report.html"], ["export", "--junit", "-"]):
        done, hung = finish(start_cli(tmp_path, *args), [fifo])
        assert not hung, f"parallux {' '.join(args)} blocked opening the FIFO planted as stderr.txt"
        assert done.returncode == 0, done.stderr


# -- parallux clean --------------------------------------------------------------------------------------

def test_clean_never_blocks_on_a_fifo_planted_as_a_work_dirs_lock(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        goal.schd("echo a", name="a")
    """)
    for _ in range(2):
        done = run_cli(tmp_path, "config.py")
        assert done.returncode == 0, done.stderr
    fifos = [work_dir / LOCK_NAME for work_dir in (tmp_path / "ws").glob("*/*")]
    assert len(fifos) == 2
    for fifo in fifos:
        os.mkfifo(fifo)
    done, hung = finish(start_cli(tmp_path, "clean", "--keep", "1"), fifos)
    assert not hung, "parallux clean blocked opening a FIFO planted as a work dir's lock"
    assert done.returncode == 0, done.stderr
    assert "unreadable lock" in done.stdout  # (left alone: no lock parallux wrote, nothing to trust)
    assert all(fifo.parent.is_dir() for fifo in fifos)


# -- --log FILE ------------------------------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="making a file owned by another user takes root")
def test_an_empty_log_file_another_user_planted_never_takes_the_run_log(tmp_path: Path) -> None:
    """In a shared directory (/tmp) a co-user may plant an empty file at the --log path a run will use: the
    log (commands, outcomes, what `parallux clean` trusts) would go into their file, open to them."""
    planted = tmp_path / "shared" / "run.jsonl"
    planted.parent.mkdir()
    planted.write_text("")
    os.chown(planted, 65534, 65534)  # as if user nobody had made it
    write_config(tmp_path, ONE)
    done = run_cli(tmp_path, "config.py", "--log", str(planted), "--", f"ws={tmp_path / 'ws'}", "cmd=echo hi")
    assert done.returncode == 0, done.stderr
    assert planted.read_text() == "", "the run log was written into another user's file"
    own = [p for p in planted.parent.iterdir() if p != planted]
    assert len(own) == 1 and own[0].stat().st_uid == os.geteuid()
    assert '"event":"run_finished"' in own[0].read_text()


# -- --resume --------------------------------------------------------------------------------------------

def test_resume_takes_no_completion_record_found_through_a_link_in_place_of_the_work_dir(tmp_path: Path) -> None:
    """A co-user moves a finished work dir away and leaves a link to it (or to a dir with a record of their
    making): --resume must not take that record as the command's; the command runs, and ends `error` naming
    the link, as a run without --resume does."""
    write_config(tmp_path, ONE)
    args = ["config.py", "--", f"ws={tmp_path / 'ws'}", "cmd=echo hi"]
    first = run_cli(tmp_path, *args)
    assert first.returncode == 0 and "RESULT ok None" in first.stdout, first.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "ws" / "a").rename(elsewhere / "a")
    os.symlink(elsewhere / "a", tmp_path / "ws" / "a")
    again = run_cli(tmp_path, "--resume", *args)
    assert "skipped, already done" not in again.stderr
    assert "RESULT error" in again.stdout and "symbolic link" in again.stdout, again.stdout + again.stderr


# -- put into the workspace ------------------------------------------------------------------------------

PUTS = """
    import json
    from parallux import goal

    if goal.args["runner"] == "ssh":
        runner = goal.ssh("server", host=goal.args["host"], workspace=goal.args["ws"])
    else:
        runner = goal.local(workspace=goal.args["ws"])
    goal.setRunner([runner])
    for source, target in (("src", "tree"), ("src/f.txt", "through/g.txt")):
        try:
            runner.put(source, target)
            print(json.dumps([target, "ok"]))
        except Exception as exc:
            print(json.dumps([target, str(exc)]))
"""


@pytest.mark.parametrize("runner", ["local", "ssh"])
def test_put_to_a_path_in_the_workspace_never_writes_through_a_link_planted_there(
        runner: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A relative destination is in the workspace, where a co-user may have put a link: as the destination
    (``tree -> outside``) it is replaced like a link below the root, and on the way (``through -> outside``)
    the put fails naming it; outside stays as it was either way."""
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.txt").write_text("mine\n")
    outside.mkdir()
    (outside / "f.txt").write_text("precious\n")
    (outside / "same.txt").write_text("same\n")  # as the source's: the plan must not skip it
    (tmp_path / "src" / "same.txt").write_text("same\n")
    same_time = (outside / "same.txt").stat().st_mtime_ns
    os.utime(tmp_path / "src" / "same.txt", ns=(same_time, same_time))
    ws.mkdir()
    os.symlink(outside, ws / "tree")
    os.symlink(outside, ws / "through")
    write_config(tmp_path, PUTS)
    args = ["config.py", "--", f"runner={runner}", f"ws={ws}"]
    env = None
    if runner == "ssh":
        from tests.sshd import HOST_ALIAS
        env = request.getfixturevalue("sshd_server").client_env()
        args.append(f"host={HOST_ALIAS}")
    done = run_cli(tmp_path, *args, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    outcomes = dict(json.loads(line) for line in done.stdout.splitlines() if line.startswith("["))
    assert sorted(p.name for p in outside.iterdir()) == ["f.txt", "same.txt"]
    assert (outside / "f.txt").read_text() == "precious\n"
    assert outcomes["tree"] == "ok" and (ws / "tree" / "f.txt").read_text() == "mine\n"
    assert (ws / "tree" / "same.txt").read_text() == "same\n"
    assert not (ws / "tree").is_symlink()
    assert "symbolic link" in outcomes["through/g.txt"] and str(ws / "through") in outcomes["through/g.txt"]


# -- reading a runner's files ----------------------------------------------------------------------------

def test_reading_a_result_whose_stdout_became_a_fifo_never_blocks_the_launcher(tmp_path: Path) -> None:
    """Between a command's end and the config's read_stdout() a co-user swaps its stdout.txt for a FIFO
    (here the config does it, at that very point): the read fails naming the file, and the launcher serves
    the next command."""
    write_config(tmp_path, """
        import os
        from parallux import goal
        runner = goal.local(workspace=goal.args["ws"])
        goal.setRunner([runner])
        goal.schd("echo hi", name="a", work_relpath="a")
        [result] = goal.issue().sync()
        os.remove(result.stdout_path)
        os.mkfifo(result.stdout_path)
        try:
            print("READ", result.read_stdout())
        except Exception as exc:
            print("REFUSED", exc)
        goal.schd("echo after", name="b", work_relpath="b")
        [after] = goal.issue().sync()
        print("AFTER", after.status)
    """)
    fifo = tmp_path / "ws" / "a" / "stdout.txt"
    done, hung = finish(start_cli(tmp_path, "config.py", "--", f"ws={tmp_path / 'ws'}"), [fifo])
    assert not hung, "the launcher blocked opening the FIFO that took stdout.txt's place\n" + done.stderr
    assert done.returncode == 0, done.stderr
    assert "REFUSED" in done.stdout and "stdout.txt" in done.stdout, done.stdout
    assert "AFTER ok" in done.stdout


def test_a_view_never_blocks_on_a_fifo_that_took_a_log_written_with_log_s_place(tmp_path: Path) -> None:
    """A --log FILE in a directory others may write: someone replaces it with a FIFO. The history's link
    still names it; `parallux show RUN` fails saying so, and never waits for a writer."""
    write_config(tmp_path, ONE)
    log = tmp_path / "shared" / "run.jsonl"
    log.parent.mkdir()
    done = run_cli(tmp_path, "config.py", "--log", str(log), "--", f"ws={tmp_path / 'ws'}", "cmd=echo hi")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(log.read_text().splitlines()[0])["run_id"]
    log.unlink()
    os.mkfifo(log)
    shown, hung = finish(start_cli(tmp_path, "show", run_id), [log])
    assert not hung, "parallux show blocked opening the FIFO that took the run log's place"
    assert shown.returncode == 2 and "not a regular file" in shown.stderr, shown.stderr
