"""``parallux clean`` through the real CLI: which runs it keeps, what it removes, and what it never touches.

Every run here is a real run of a real config (so its log and work dirs are what parallux writes); the tests
then plant what a user's machine may hold (a symlink out of the workspace, a live lock) and look at the files.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from parallux._launcher import LOCK_NAME, process_start
from tests.clean_runs import clean, run_id_of
from tests.helpers import cli_env, run_cli, start_cli, wait_until, write_config

CONFIG = """
    from parallux import goal
    pause, fixed = goal.args.get("pause", "0"), goal.args.get("fixed", "fixed")
    goal.local(workspace="ws", max_jobs=3)
    goal.schd(f"sleep {pause}; echo a > out.txt", name="a")
    goal.schd("echo b")
    goal.schd("echo fixed", name="fixed", work_relpath=fixed)
"""


def runs_dir(home: Path) -> Path:
    return home / ".local" / "state" / "parallux" / "runs"


def run_config(home: Path, name: str = "config.py", *args: str) -> str:
    """Run the config (written once; each config has a work_relpath of its own) and return its run id."""
    if not (home / name).exists():
        fixed = "fixed" if name == "config.py" else f"fixed-{Path(name).stem}"
        write_config(home, CONFIG.replace('"fixed")', f'"{fixed}")'), name=name)
    done = run_cli(home, name, *args)
    assert done.returncode == 0, done.stderr
    return run_id_of(done.stderr)


def logged_runs(home: Path, config: str = "config.py") -> list[str]:
    """The run ids of a config's history, oldest first."""
    done = run_cli(home, "runs", "--all", "--config", config, "--format", "json")
    assert done.returncode == 0, done.stderr
    return [entry["run_id"] for entry in reversed(json.loads(done.stdout))]


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root (links not followed) with its size and mtime: what a dry run must not change."""
    found = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        found[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found


# -- which runs are kept ---------------------------------------------------------------------------------


def test_clean_keeps_the_newest_ten_runs_of_each_config_by_default(tmp_path: Path) -> None:
    runs = [run_config(tmp_path) for _ in range(12)]
    other = run_config(tmp_path, "other.py")
    ws = tmp_path / "ws"
    assert all((ws / run / "00001_a" / "out.txt").is_file() for run in runs)
    history = sorted(int(p.name) for p in (ws / "fixed" / ".history").iterdir())
    assert history == list(range(1, 12))  # each rerun moved the previous outputs aside

    done = clean(tmp_path)

    assert logged_runs(tmp_path) == runs[2:]
    assert logged_runs(tmp_path, "other.py") == [other]
    for run in runs[:2]:
        assert not (ws / run).exists()
        assert run in done.stdout
    assert all((ws / run / "00001_a" / "out.txt").is_file() for run in runs[2:])
    assert (ws / other / "00002").is_dir()
    # .history/1 was made by the second run, before the oldest kept one (the third) started; the third
    # run made .history/2
    assert sorted(int(p.name) for p in (ws / "fixed" / ".history").iterdir()) == list(range(2, 12))
    assert (ws / "fixed" / "stdout.txt").read_text() == "fixed\n"
    assert "freed" in done.stdout

    again = clean(tmp_path)
    assert logged_runs(tmp_path) == runs[2:]
    assert "nothing to remove" in again.stdout


def test_clean_keep_n_and_config_limit_it_to_one_configs_runs(tmp_path: Path) -> None:
    runs = [run_config(tmp_path) for _ in range(3)]
    others = [run_config(tmp_path, "other.py") for _ in range(3)]
    ws = tmp_path / "ws"

    done = clean(tmp_path, "--config", "config.py", "--keep", "2")

    assert logged_runs(tmp_path) == runs[1:]
    assert logged_runs(tmp_path, "other.py") == others
    assert not (ws / runs[0]).exists() and (ws / runs[1]).is_dir()
    assert all((ws / run).is_dir() for run in others)
    assert others[0] not in done.stdout

    clean(tmp_path, "--keep", "1")
    assert logged_runs(tmp_path) == runs[2:]
    assert logged_runs(tmp_path, "other.py") == others[2:]
    assert sorted(p.name for p in ws.iterdir()) == sorted(["fixed", "fixed-other", runs[2], others[2]])


def test_clean_dry_run_removes_nothing_and_says_what_it_would(tmp_path: Path) -> None:
    runs = [run_config(tmp_path) for _ in range(3)]
    before = tree(tmp_path)

    done = clean(tmp_path, "--keep", "1", "--dry-run")

    assert tree(tmp_path) == before
    assert "would remove" in done.stdout and "would free" in done.stdout
    assert runs[0] in done.stdout and runs[1] in done.stdout and runs[2] not in done.stdout
    assert str(tmp_path / "ws" / "fixed" / ".history" / "1") in done.stdout  # made before the kept run
    assert str(tmp_path / "ws" / "fixed" / ".history" / "2") not in done.stdout

    clean(tmp_path, "--keep", "1")
    assert logged_runs(tmp_path) == runs[2:]


def test_run_log_says_which_work_dirs_parallux_generated_and_where_the_workspace_is(tmp_path: Path) -> None:
    run = run_config(tmp_path)
    events = [json.loads(line) for line in next(runs_dir(tmp_path).glob(f"*/{run}.jsonl")).read_text().splitlines()]
    assert {e["name"]: e["work_generated"] for e in events if e["event"] == "queued"} == \
        {"a": True, "job2": True, "fixed": False}
    runner = next(e for e in events if e["event"] == "runner")
    assert runner["workspace"] == str(tmp_path / "ws") and runner["login"] == []


def test_clean_never_removes_an_explicit_work_relpath(tmp_path: Path) -> None:
    runs = [run_config(tmp_path) for _ in range(3)]
    fixed = tmp_path / "ws" / "fixed"

    clean(tmp_path, "--keep", "1")

    assert logged_runs(tmp_path) == runs[2:]
    assert (fixed / "stdout.txt").read_text() == "fixed\n" and (fixed / "command.txt").is_file()
    assert sorted(p.name for p in (fixed / ".history").iterdir()) == ["2"]
    assert (fixed / ".history" / "2" / "stdout.txt").read_text() == "fixed\n"


# -- what is never touched -------------------------------------------------------------------------------


def test_clean_keeps_a_run_still_going_and_its_work_dirs(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    going = start_cli(tmp_path, "config.py", "pause=600", "fixed=elsewhere")  # (the others' "fixed" stays free)
    try:
        assert wait_until(lambda: len(logged_runs(tmp_path)) == 1 and any((tmp_path / "ws").glob("*/00001_a")),
                          timeout=60)
        first = logged_runs(tmp_path)[0]
        later = [run_config(tmp_path) for _ in range(2)]

        done = clean(tmp_path, "--keep", "1")

        assert logged_runs(tmp_path) == [first, later[1]]
        assert (tmp_path / "ws" / first / "00001_a" / LOCK_NAME).is_file()
        assert not (tmp_path / "ws" / later[0]).exists()
        assert f"{first}" in done.stdout and "still going" in done.stdout
    finally:
        going.send_signal(signal.SIGTERM)
        going.communicate(timeout=60)


def test_clean_leaves_a_work_dir_locked_by_a_live_run_and_keeps_its_log(tmp_path: Path) -> None:
    runs = [run_config(tmp_path) for _ in range(3)]
    locked = tmp_path / "ws" / runs[0] / "00002"
    holder = subprocess.Popen(["sleep", "600"])  # a live process on this host, as another run's launcher
    try:
        (locked / LOCK_NAME).write_text(json.dumps({
            "host": socket.gethostname(), "pid": holder.pid, "pid_start": process_start(holder.pid),
            "run_id": "20990101-000000-abcdef", "time": 0}))

        done = clean(tmp_path, "--keep", "1")

        assert (locked / "stdout.txt").read_text() == "b\n"
        assert not (tmp_path / "ws" / runs[0] / "00001_a").exists()  # the rest of its run went
        assert "20990101-000000-abcdef" in done.stdout
        assert logged_runs(tmp_path) == [runs[0], runs[2]]  # its log stays: a later clean finds the dir
        assert not (tmp_path / "ws" / runs[1]).exists()
    finally:
        holder.kill()
        holder.wait()
    clean(tmp_path, "--keep", "1")  # the holder is gone: the lock is stale
    assert not (tmp_path / "ws" / runs[0]).exists()
    assert logged_runs(tmp_path) == [runs[2]]


def test_clean_never_follows_a_symlink_out_of_the_workspace(tmp_path: Path) -> None:
    runs = [run_config(tmp_path) for _ in range(3)]
    ws = tmp_path / "ws"
    outside = tmp_path / "outside"
    (outside / "precious").mkdir(parents=True)
    (outside / "precious" / "data.txt").write_text("keep me")
    # inside a generated work dir: a link to a directory outside
    (ws / runs[0] / "00001_a" / "escape").symlink_to(outside / "precious")
    # a generated work dir replaced by a link, and a run's directory replaced by one
    (ws / runs[0] / "00002").rename(outside / "moved_00002")
    (ws / runs[0] / "00002").symlink_to(outside / "moved_00002")
    (ws / runs[1]).rename(outside / runs[1])
    (ws / runs[1]).symlink_to(outside / runs[1])
    before = tree(outside)

    done = clean(tmp_path, "--keep", "1")

    assert tree(outside) == before
    assert not (ws / runs[0] / "00001_a").exists()  # removed: the link in it, not what it points to
    assert "symbolic link" in done.stdout
    assert (ws / runs[0] / "00002").is_symlink() and (ws / runs[1]).is_symlink()
    assert logged_runs(tmp_path) == runs  # their work dirs were not all removed: the logs stay


# -- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (("--keep", "0"), "--keep: must be >= 1"),
    (("--keep", "many"), "--keep: invalid"),
    (("--keep", "-2"), "--keep"),
    (("--config", "nowhere.py"), "no runs of"),
    (("--dryrun",), "unrecognized arguments: --dryrun"),
    (("extra",), "unrecognized arguments: extra"),
])
def test_clean_bad_input_is_a_usage_error_that_removes_nothing(tmp_path: Path, args: tuple[str, ...],
                                                               message: str) -> None:
    run_config(tmp_path)
    before = tree(tmp_path)
    done = run_cli(tmp_path, "clean", *args, env=cli_env(tmp_path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert tree(tmp_path) == before


def test_clean_removes_nothing_outside_the_state_dir_for_a_log_written_with_log(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    done = run_cli(tmp_path, "config.py", "--log", "mine.jsonl")
    assert done.returncode == 0, done.stderr
    old = run_id_of(done.stderr)
    runs = [run_config(tmp_path)]

    out = clean(tmp_path, "--keep", "1")

    assert (tmp_path / "mine.jsonl").is_file()  # the user's own file: only the history's link to it went
    assert not list(runs_dir(tmp_path).glob(f"*/{old}.jsonl"))
    assert logged_runs(tmp_path) == runs
    assert not (tmp_path / "ws" / old).exists() and (tmp_path / "ws" / runs[0]).is_dir()
    assert "mine.jsonl" in out.stdout
