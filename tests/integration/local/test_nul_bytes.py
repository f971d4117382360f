"""A NUL byte cannot reach a process (argv, environment and paths are C strings): every call that takes a
command, an argument, a path, a name or a variable refuses one at the call, naming what holds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli, write_config

PRELUDE = """
from parallux import goal, workloads
local = goal.local(name="local", workspace="ws")
goal.schd("touch ../../ran-anyway", name="innocent")
"""

# (the call, as config source; what the message names). "\\0" is a NUL in the config's string literal.
NUL_CALLS = [
    ('goal.schd("echo a\\0b")', "command contains a NUL byte at index 6"),
    ('goal.run("echo a\\0b")', "goal.run(): command contains a NUL byte"),
    ('goal.run(["echo", "a\\0b"])', "command[1] contains a NUL byte at index 1"),
    ('local.run(("echo", "x", "\\0"))', "local.run(): command[2] contains a NUL byte"),
    ('goal.schd("echo", name="a\\0")', "name contains a NUL byte"),
    ('goal.schd("echo", work_relpath="a/b\\0c")', "work_relpath contains a NUL byte at index 3"),
    ('goal.run("echo", cwd="/tmp\\0")', "cwd contains a NUL byte"),
    ('local.run("echo", env={"A\\0B": "1"})', "a key of env contains a NUL byte"),
    ('goal.schd("echo", env={"A": "x\\0"})', "env['A'] contains a NUL byte"),
    ('goal.schd("echo", inputs=["config.py", "a\\0"])', "inputs[1] contains a NUL byte"),
    ('goal.local(name="l\\0x", workspace="ws2")', "goal.local(): name contains a NUL byte"),
    ('goal.local(name="x", workspace="w\\0s")', "goal.local(): workspace contains a NUL byte"),
    ('goal.local(name="x", env={"A": "\\0"})', "goal.local(): env['A'] contains a NUL byte"),
    ('goal.local(name="x", env={"\\0": "1"})', "goal.local(): a key of env contains a NUL byte"),
    ('goal.ssh("h\\0ost")', "goal.ssh(): name contains a NUL byte"),
    ('goal.ssh("h", host="a\\0b")', "goal.ssh(): host contains a NUL byte"),
    ('goal.ssh("h", identity_file="/k\\0")', "goal.ssh(): identity_file contains a NUL byte"),
    ('goal.slurm("s", partition="p\\0")', "goal.slurm(): partition contains a NUL byte"),
    ('goal.slurm("s", sbatch_options=["--x=\\0"])', "goal.slurm(): sbatch_options[0] contains a NUL byte"),
    ('goal.setEnv("A", "x\\0")', "goal.setEnv(): value contains a NUL byte"),
    ('goal.setRunner(["local", "b\\0"])', "goal.setRunner(): runners[1] contains a NUL byte"),
    ('goal.put("a\\0", "b")', "goal.put(): local contains a NUL byte"),
    ('local.put("config.py", "x\\0")', "local.put(): remote contains a NUL byte"),
    ('local.get("x\\0", "y")', "local.get(): remote contains a NUL byte"),
    ('local.read_file("x\\0")', "local.read_file(): path contains a NUL byte"),
    ('workloads("in\\0/*", levels=1)', "workloads(): patterns contains a NUL byte"),
    ('workloads(["config.py", "in\\0"], levels=1)', "workloads(): patterns[1] contains a NUL byte"),
]


@pytest.mark.parametrize("call, message", NUL_CALLS, ids=[c for c, _ in NUL_CALLS])
def test_nul_bytes_are_refused_at_the_call(tmp_path: Path, call: str, message: str) -> None:
    write_config(tmp_path, PRELUDE + call + "\n")
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert 'config.py", line 5' in done.stderr  # the offending line of the config
    assert "embedded null byte" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "ran-anyway").exists()


def test_nul_bytes_message_shows_where_in_a_long_value(tmp_path: Path) -> None:
    write_config(tmp_path, PRELUDE + 'goal.run("echo " + "x" * 100000 + "\\0" + "y" * 100000)\n')
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2, done.stderr
    assert "command contains a NUL byte at index 100005" in done.stderr
    assert "xxx\\x00yyy" in done.stderr and len(done.stderr) < 5000  # the place, not the whole value
