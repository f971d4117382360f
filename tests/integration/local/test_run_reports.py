"""What the user reads while a run goes and when it ends, through the real CLI: the live display's runner
lines and counts, the plain progress line, -v lines, the dry-run line, the hint after Ctrl-C, and the
workloads() error for a pattern that matches nothing."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import pexpect

from tests.helpers import cli_env, kill_pids, new_token, pids_with_env, run_cli, start_cli, wait_until, write_config
from tests.terminal import CSI, RICH_OVERRIDES, screen_lines

LIVE_CONFIG = """
    import time
    from parallux import goal
    busy = goal.local(name="busy", workspace="ws", max_jobs=2)
    spare = goal.local(name="spare", workspace="ws")
    goal.setRunner([busy, spare])
    goal.run("sleep 5", name="hangs", runner=busy, timeout=0.3, check=False)
    goal.run("exit 3", name="crashes", runner=busy, check=False)
    goal.run("sleep 1.5", name="slow", runner=busy)
"""


def run_in_terminal(tmp_path: Path, config: str) -> tuple[str, int | None]:
    """What ``parallux config.py`` drew on a 30x120 pseudo-terminal, and its exit status."""
    write_config(tmp_path, config)
    env = cli_env(tmp_path, TERM="xterm")
    for name in RICH_OVERRIDES:
        env.pop(name, None)
    child = pexpect.spawn(sys.executable, ["-m", "parallux", "config.py"], cwd=str(tmp_path), env=env,
                          dimensions=(30, 120), encoding="utf-8", timeout=20)
    child.expect(pexpect.EOF)
    child.close()
    return child.before, child.exitstatus


def test_live_display_lists_idle_runners_and_counts_timeouts_apart(tmp_path: Path) -> None:
    raw, status = run_in_terminal(tmp_path, LIVE_CONFIG)
    assert status == 0, raw
    plain = CSI.sub("", raw)
    assert re.search(r"\n\s*spare  idle", plain), "the pool's idle runner has a line of its own"
    assert re.search(r"\n\s*busy  slow \d", plain)
    frames = re.findall(r"parallux  (\d+) done  (\d+) running  (\d+) failed(?:  (\d+) timed out)?  (\d+) queued",
                        plain)
    assert frames[-1] == ("1", "0", "1", "1", "0"), frames
    assert any(line.startswith("parallux: 3 commands (") for line in screen_lines(raw))


def test_live_display_says_which_runner_of_the_pool_was_quarantined(tmp_path: Path) -> None:
    raw, status = run_in_terminal(tmp_path, """
        import time
        from parallux import goal
        good = goal.local(name="good", workspace="ws")
        broken = goal.local(name="broken", workspace="ws")
        goal.setRunner([good, broken])
        for i in range(5):
            broken.run("exit 127", check=False).sync()
        goal.run("sleep 1", name="after", runner=good).sync()
    """)
    assert status == 0, raw
    plain = CSI.sub("", raw)
    assert re.search(r"\n\s*broken  quarantined", plain), plain[-2000:]
    assert re.search(r"\n\s*good  after \d", plain)


def test_plain_progress_line_counts_timeouts_apart(tmp_path: Path) -> None:
    write_config(tmp_path, LIVE_CONFIG)
    done = run_cli(tmp_path, "config.py", "--progress-interval", "0.25")
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if " running, " in line]
    assert any(", 1 running, 1 failed, 1 timed out, 0 queued, " in line for line in progress), progress


def test_verbose_finished_lines_carry_the_exit_status_and_duration(tmp_path: Path) -> None:
    write_config(tmp_path, LIVE_CONFIG)
    done = run_cli(tmp_path, "config.py", "-v")
    assert done.returncode == 0, done.stderr
    finished = {m.group(1): m.group(2) for m in re.finditer(r"parallux: finished '(\w+)' on busy (.*) \(", done.stderr)}
    assert re.fullmatch(r"ok, exit status 0, 1\.\d\d s", finished["slow"]), finished
    assert re.fullmatch(r"failed, exit status 3, 0\.\d\d s", finished["crashes"]), finished
    assert re.fullmatch(r"timeout, killed by signal 15, 0\.\d\d s", finished["hangs"]), finished


def test_dry_run_line_counts_in_the_singular_and_plural(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        for i in range(int(goal.args["n"])):
            goal.schd("true")
    """)
    one = run_cli(tmp_path, "config.py", "--dry-run", "n=1")
    assert "parallux: dry run: 1 command planned; nothing was started" in one.stderr
    two = run_cli(tmp_path, "config.py", "--dry-run", "n=2")
    assert "parallux: dry run: 2 commands planned; nothing was started" in two.stderr


def sleeping(token: str) -> list[int]:
    """The ``sleep`` processes among those carrying ``token`` (each under its ``sh``)."""
    found = []
    for pid in pids_with_env(token):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep":
                found.append(pid)
        except OSError:
            pass
    return found


def interrupted_run(tmp_path: Path, explicit: bool) -> str:
    """Run 3 quick commands and 2 that hang, interrupt with Ctrl-C once they run; parallux's stderr."""
    token = new_token()
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws", max_jobs=5)
        explicit = {explicit}
        for i in range(3):
            goal.schd("true", **({{"work_relpath": f"quick/{{i}}"}} if explicit else {{}}))
        for i in range(2):
            goal.schd("sleep 1000", env={{"TOKEN": "{token}"}},
                      **({{"work_relpath": f"hang/{{i}}"}} if explicit else {{}}))
    """)
    process = start_cli(tmp_path, "config.py")
    try:
        assert wait_until(lambda: len(sleeping(token)) == 2, timeout=15)
        assert wait_until(lambda: len(list((tmp_path / "ws").rglob("result.json"))) == 3, timeout=15)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 130, stderr
        return stderr
    finally:
        process.kill()
        process.communicate()
        kill_pids(pids_with_env(token))


def test_interrupt_suggests_resume_when_commands_have_explicit_work_paths(tmp_path: Path) -> None:
    stderr = interrupted_run(tmp_path, explicit=True)
    assert stderr.rstrip().splitlines()[-1] == (
        "parallux: 2 commands did not finish; rerun with --resume to skip the 3 that completed")


def test_interrupt_suggests_nothing_when_no_work_path_is_explicit(tmp_path: Path) -> None:
    stderr = interrupted_run(tmp_path, explicit=False)
    assert "--resume" not in stderr


def test_workloads_pattern_that_matches_nothing_names_its_directory(tmp_path: Path) -> None:
    (tmp_path / "inputs").mkdir()
    write_config(tmp_path, """
        from parallux import goal, workloads
        workloads(goal.args["pattern"], levels=1)
    """)
    done = run_cli(tmp_path, "config.py", "pattern=inputs/*.trace")
    assert done.returncode == 2, done.stderr
    assert (f"workloads(): pattern 'inputs/*.trace' matches no file (relative to {tmp_path}, the directory "
            "parallux was started in)") in done.stderr
    done = run_cli(tmp_path, "config.py", "pattern=inputs/one.trace")
    assert f"input path 'inputs/one.trace' does not exist (relative to {tmp_path}," in done.stderr
    done = run_cli(tmp_path, "config.py", f"pattern={tmp_path}/inputs/*.trace")
    assert done.returncode == 2 and "matches no file\n" in done.stderr  # absolute: nothing to add
