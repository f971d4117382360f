"""The live display, driven through the real CLI in a pseudo-terminal (pexpect), read back byte for byte."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pexpect

from tests.helpers import cli_env, write_config
from tests.terminal import CSI, RICH_OVERRIDES, screen_lines

CONFIG = """
    import sys, time
    from parallux import goal
    goal.setRunner(goal.local(workspace="ws", max_jobs=3))
    for i in range(12):
        goal.schd("sleep 0.3", name=f"nap-{i}")
    goal.schd("echo oops >&2; exit 3", name="broken")
    group = goal.issue()
    time.sleep(0.5)  # print while the display is up and redrawing
    print("hello from config")
    print("note from config on stderr", file=sys.stderr)
    group.sync()
"""

SGR = re.compile(r"\x1b\[([0-9;]*)m")
COUNTS = re.compile(r"parallux  (\d+) done  (\d+) running  (\d+) failed  (\d+) queued")
# Foreground/background colours: 30-38, 40-48, 90-97, 100-107. Bold (1) and dim (2) are not colours, and
# NO_COLOR (https://no-color.org) asks only for no colour, so the display keeps them.
COLOUR_CODES = {*range(30, 39), *range(40, 49), *range(90, 98), *range(100, 108)}
def run_in_terminal(tmp_path: Path, **extra_env: str) -> tuple[str, int]:
    """Run ``parallux config.py`` on a 30x120 pseudo-terminal; return everything it drew and its exit status."""
    write_config(tmp_path, CONFIG)
    env = cli_env(tmp_path, TERM="xterm")
    for name in RICH_OVERRIDES:
        env.pop(name, None)
    env.update(extra_env)
    child = pexpect.spawn(sys.executable, ["-m", "parallux", "config.py"], cwd=str(tmp_path), env=env,
                          dimensions=(30, 120), encoding="utf-8", timeout=12)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus is not None, f"killed by signal {child.signalstatus}"
    return child.before, child.exitstatus


def colour_codes(raw: str) -> set[int]:
    return {int(p) for params in SGR.findall(raw) for p in params.split(";") if p} & COLOUR_CODES


def test_LiveReporter_shows_counts_keeps_prints_whole_and_ends_cleanly(tmp_path: Path) -> None:
    raw, status = run_in_terminal(tmp_path)
    plain = CSI.sub("", raw)
    frames = [tuple(map(int, m)) for m in COUNTS.findall(plain)]
    assert any(running > 0 and queued > 0 for _, running, _, queued in frames), frames
    assert frames[-1] == (12, 0, 1, 0)
    lines = screen_lines(raw)
    assert "hello from config" in lines and "note from config on stderr" in lines
    failure = next(i for i, line in enumerate(lines) if "FAILED command 'broken'" in line)
    summary = next(i for i, line in enumerate(lines) if line.startswith("parallux: 13 commands ("))
    assert failure < summary
    assert COUNTS.match(lines[summary - 1]), "the final frame is drawn whole, right above the summary"
    assert status == 1  # the failing command has check=True
    assert raw.rindex("\x1b[?25h") > raw.rindex("\x1b[?25l"), "the cursor is shown again at the end"
    assert "\x1b[?25l" not in raw[raw.rindex("\x1b[?25h"):]
    assert colour_codes(raw), "without NO_COLOR the display is coloured (so the NO_COLOR test means something)"


def test_LiveReporter_uses_no_colour_under_NO_COLOR(tmp_path: Path) -> None:
    raw, status = run_in_terminal(tmp_path, NO_COLOR="1")
    assert status == 1
    assert COUNTS.search(CSI.sub("", raw))
    assert "hello from config" in screen_lines(raw)
    assert colour_codes(raw) == set()


def test_eta_counts_the_pace_from_the_first_start_not_a_wait_before_it() -> None:
    from parallux._handles import Command, Completion, Result
    from parallux._progress import Progress
    progress = Progress()
    progress.started_at -= 100  # a hundred seconds waiting for an allocation before anything ran
    commands = [Command(Completion(), name=f"c{i}", seq=i, command="true", command_text="true", work_relpath=f"w{i}",
                        timeout=None, check=True) for i in range(4)]
    for command in commands:
        progress("queued", command)
    for command in commands[:2]:
        progress("started", command)
    progress.first_start = time.monotonic() - 2  # the first two started 2 s ago; one has finished
    progress("finished", commands[0], result=Result(commands[0], "ok"))
    eta = progress.eta()
    assert eta is not None and 5 < eta < 7  # 2 s per command, 3 left: ~6 s -- not ~300 s


def test_live_display_escapes_a_running_commands_terminal_controls(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws", max_jobs=2)
        goal.schd("sleep 1.5", name="nap\\x1b]0;retitled\\x07\\x1b[2Jcleared")
    """)
    env = cli_env(tmp_path, TERM="xterm")
    for name in RICH_OVERRIDES:
        env.pop(name, None)
    child = pexpect.spawn(sys.executable, ["-m", "parallux", "config.py"], cwd=str(tmp_path), env=env,
                          dimensions=(30, 120), encoding="utf-8", timeout=12)
    child.expect(pexpect.EOF)
    child.close()
    raw = child.before
    assert child.exitstatus == 0, raw
    assert "nap\\x1b]0;retitled\\x07\\x1b[2Jcleared" in raw  # drawn while it ran
    assert "\x1b]0;" not in raw and "\x1b[2J" not in raw and "\x07" not in raw
