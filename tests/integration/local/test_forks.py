"""A config that forks: ``parallux config.py | cat`` ends as ``python3 config.py | cat`` would.

A forked child of the config has no engine: it must neither run parallux's end of the run (waiting for ever on
an engine thread that is not there, holding the pipe) nor hang on a lock; it ends as plain Python ends it.
And parallux's own helper processes (the launchers) never hold the user's stdout or stderr.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import cli_env, write_config

PIPELINE_LIMIT = 60  # seconds: only a hang gets near it


def run_piped(tmp_path: Path) -> tuple[int, str]:
    """``parallux config.py | cat`` in a session of its own; its status and what came out of ``cat``. A
    pipeline that does not end fails the test, after everything of that session is killed."""
    pipeline = subprocess.Popen(["sh", "-c", f"'{sys.executable}' -m parallux config.py 2>&1 | cat"],
                                cwd=tmp_path, env=cli_env(tmp_path), stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
    try:
        out, _ = pipeline.communicate(timeout=PIPELINE_LIMIT)
    except subprocess.TimeoutExpired:
        kill_session(pipeline.pid)
        out, _ = pipeline.communicate()
        pytest.fail(f"the pipeline did not end; it printed:\n{out}")
    return pipeline.returncode, out


def kill_session(sid: int) -> None:
    """SIGKILL every process of the session this test started (and only those)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


# How the forked child ends -> its exit status and what it prints, as plain Python would end it.
CHILD_ENDINGS = [
    ("pass", 0, None),
    ("sys.exit(0)", 0, None),
    ("sys.exit(5)", 5, None),
    ("sys.exit('child gives up')", 1, "child gives up"),
    ("raise ValueError('child broke')", 1, "ValueError: child broke"),
    ("goal.run('true')", 1, "cannot be used in a process the config forked"),
    ("early.sync()", 1, "cannot be used in a process the config forked"),
    ("local.run('true')", 1, "cannot be used in a process the config forked"),
]


@pytest.mark.parametrize("ending, status, said", CHILD_ENDINGS, ids=[e for e, _, _ in CHILD_ENDINGS])
def test_forks_a_forked_child_ends_as_python_would(tmp_path: Path, ending: str, status: int, said: str | None
                                                   ) -> None:
    write_config(tmp_path, f"""
        import os, sys
        from parallux import goal
        local = goal.local(workspace="ws")
        early = goal.run("while [ ! -e ../../go ]; do sleep 0.05; done", work_relpath="early")  # waits for go
        pid = os.fork()
        if pid == 0:
            {ending}
        else:
            print("child status", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
            open("go", "w").close()
            goal.run("echo late", work_relpath="late")
    """)
    returncode, out = run_piped(tmp_path)
    assert returncode == 0, out
    assert f"child status {status}\n" in out
    assert out.count("parallux: 2 commands (2 ok)") == 1  # the parent's summary, and only the parent's
    if said is not None:
        assert said in out
    assert (tmp_path / "ws" / "late" / "stdout.txt").read_text() == "late\n"


@pytest.mark.parametrize("fork", [
    "os.fork()",  # both go on to the end of the config
    "subprocess.Popen(['sleep', '1'])",  # a background child that holds stdout for a second
    "os._exit(0) if os.fork() == 0 else None",
])
def test_forks_the_pipeline_ends(tmp_path: Path, fork: str) -> None:
    write_config(tmp_path, f"""
        import os, subprocess
        from parallux import goal
        goal.local(workspace="ws")
        goal.run("echo hi", work_relpath="hi")
        {fork}
        print("config done", flush=True)
    """)
    returncode, out = run_piped(tmp_path)
    assert returncode == 0, out
    assert "config done" in out and out.count("parallux: 1 command (1 ok)") == 1


def test_forks_launchers_do_not_hold_the_users_stdout_or_stderr(tmp_path: Path) -> None:
    # The launcher is the parent of every command ($PPID); its guardian is in the runner's facts.
    write_config(tmp_path, """
        import os
        from parallux import goal
        local = goal.local(workspace="ws")
        other = goal.local(name="other", workspace="ws")
        goal.setRunner([local, other])
        ours = {os.readlink(f"/proc/self/fd/{fd}") for fd in (1, 2)}
        for runner in (local, other):
            h = runner.run("readlink /proc/$PPID/fd/0 /proc/$PPID/fd/1 /proc/$PPID/fd/2")
            theirs = set(h.sync().read_stdout().split())
            theirs |= {os.readlink(f"/proc/{runner.facts['guardian']}/fd/{fd}") for fd in (0, 1, 2)}
            print(runner.name, sorted(ours & theirs), flush=True)
    """)
    returncode, out = run_piped(tmp_path)
    assert returncode == 0, out
    assert "local []\n" in out and "other []\n" in out
