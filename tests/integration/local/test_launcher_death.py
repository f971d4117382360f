"""A launcher that dies -- whichever of its processes is killed -- ends its commands ``error``, saying so.

Through the real CLI, on a local runner and on an SSH runner of the test sshd. A launcher is two processes:
the one parallux (or sshd) started, which stays as the *guardian*, and the launcher it forks. Each test's
commands write their ancestry from /proc (their shell's parent is the launcher, its parent the guardian),
so the test kills exactly the process it means, found through what it started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import cli_env, kill_pids, new_token, pids_with_env, wait_until, write_config
from tests.sshd import HOST_ALIAS, SshdServer

VICTIMS = {"launcher": 0, "guardian": 1}  # their index in the ancestry a command writes
DEATHS = [("launcher", signal.SIGKILL), ("guardian", signal.SIGKILL), ("launcher", signal.SIGTERM)]
ANCESTRY = 'p=$$; for i in 1 2; do p=$(cut -d" " -f4 /proc/$p/stat); echo $p; done > "$PARALLUX_WORK_DIR/ancestry"'
# On the runner named "victim" a command writes its ancestry and sleeps (having said something on stderr, which
# is no reason for its end); anywhere else it succeeds at once.
COMMAND = f'if [ "$PARALLUX_RUNNER" = victim ]; then {ANCESTRY}; echo sleeping >&2; sleep 600; fi; echo fine'


def victim_runner(kind: str, workspace: Path) -> str:
    if kind == "local":
        return f"victim = goal.local('victim', workspace={str(workspace)!r}, max_jobs=3)"
    return f"victim = goal.ssh('victim', host=goal.args['host'], workspace={str(workspace)!r}, max_jobs=3)"


def death_config(tmp_path: Path, kind: str, token: str, retries: int, spare: bool) -> Path:
    """Three commands on the victim's launcher; a spare local runner, if any, takes their retries."""
    return write_config(tmp_path, f"""
        import json
        from parallux import goal
        {victim_runner(kind, tmp_path / "ws-victim")}
        runners = [victim]
        if {spare!r}:
            runners.append(goal.local("spare", workspace={str(tmp_path / "ws-spare")!r}, max_jobs=3))
        goal.setRunner(runners)
        goal.setScheduler(lambda runners, threads: victim if victim in runners else runners[0])
        goal.setRetries({retries})
        for i in range(3):
            goal.schd({COMMAND!r}, name=f"c{{i}}", env={{"TOKEN": {token!r}}}, check=False)
        for r in goal.issue().sync():
            print(json.dumps({{"status": r.status, "runner": r.runner_name, "error": r.error,
                               "attempts": [[a["runner"], a["status"]] for a in r.attempts]}}))
        print(victim.facts["hostname"])
    """)


def start(tmp_path: Path, config: Path, srv: SshdServer | None) -> subprocess.Popen[str]:
    env = srv.client_env() if srv is not None else cli_env(tmp_path)
    return subprocess.Popen([sys.executable, "-m", "parallux", str(config), "--log", "run.jsonl", "--",
                             f"host={HOST_ALIAS}"], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def ancestries(workspace: Path) -> list[list[int]]:
    found = []
    for path in workspace.rglob("ancestry"):
        lines = path.read_text().split()
        if len(lines) == 2:
            found.append([int(pid) for pid in lines])
    return found


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def kill_launcher_part(tmp_path: Path, process: subprocess.Popen[str], victim: str, token: str,
                       signum: int = signal.SIGKILL) -> int:
    """Once the three commands run, signal the launcher's process ``victim``, found from their ancestry;
    the guardian's pid."""
    workspace = tmp_path / "ws-victim"
    assert wait_until(lambda: len(ancestries(workspace)) == 3 and len(pids_with_env(token)) >= 6, timeout=30), \
        (ancestries(workspace), process.poll())
    found = ancestries(workspace)
    assert all(a == found[0] for a in found), found  # one launcher runs all three
    launcher, guardian = found[0]
    assert cmdline(launcher) == cmdline(guardian) and b"python" in cmdline(launcher)  # a fork, no exec
    os.kill(found[0][VICTIMS[victim]], signum)
    return guardian


def finish(process: subprocess.Popen[str], token: str) -> tuple[str, str]:
    try:
        return process.communicate(timeout=60)
    finally:
        process.kill()
        kill_pids(pids_with_env(token))


def retry_errors(log: Path) -> list[str]:
    events = [json.loads(line) for line in log.read_text().splitlines()]
    return [e["error"] for e in events if e["event"] == "retrying" and e["status"] == "error"]


@pytest.mark.parametrize("victim, signum", DEATHS, ids=[f"{v}-{s.name}" for v, s in DEATHS])
@pytest.mark.parametrize("kind", ["local", "ssh"])
def test_a_killed_launcher_part_ends_its_commands_error_and_they_are_retried(
        tmp_path: Path, request: pytest.FixtureRequest, kind: str, victim: str, signum: signal.Signals) -> None:
    """SIGKILL of the guardian (or SIGTERM of the launcher: an admin's kill) once ended the commands
    ``cancelled``: never retried, blamed on nobody. Now they end ``error``, the launcher's death their reason."""
    srv = request.getfixturevalue("sshd_server") if kind == "ssh" else None
    token = new_token()
    process = start(tmp_path, death_config(tmp_path, kind, token, retries=1, spare=True), srv)
    try:
        guardian = kill_launcher_part(tmp_path, process, victim, token, signum)
    finally:
        stdout, stderr = finish(process, token)
    assert process.returncode == 0, stderr
    *lines, host = stdout.splitlines()
    results = [json.loads(line) for line in lines]
    assert [r["status"] for r in results] == ["ok"] * 3, results
    assert all(r["attempts"] == [["victim", "error"], ["spare", "ok"]] for r in results), results
    errors = retry_errors(tmp_path / "run.jsonl")
    hows = ["it got SIGTERM"] if signum == signal.SIGTERM else ["killed by SIGKILL"]
    if kind == "ssh" and victim == "guardian":  # (should the launcher's report overtake sshd's exit-signal)
        hows.append(f"its guardian process {guardian} was killed")
    assert len(errors) == 3 and errors[0] in [f"the launcher on {host} died ({how})" for how in hows], errors
    assert errors == [errors[0]] * 3, errors  # one death, one cause
    assert "runner victim: 3 runs (3 error)" in stderr and "retries: 3" in stderr, stderr
    assert wait_until(lambda: pids_with_env(token) == [], timeout=5), pids_with_env(token)


def test_the_summary_blames_a_dead_launcher(tmp_path: Path) -> None:
    """Without retries the commands end ``error``, and the summary groups them under the launcher's death."""
    token = new_token()
    process = start(tmp_path, death_config(tmp_path, "local", token, retries=0, spare=False), None)
    try:
        kill_launcher_part(tmp_path, process, "guardian", token)
    finally:
        stdout, stderr = finish(process, token)
    assert process.returncode == 0, stderr  # check=False
    *lines, host = stdout.splitlines()
    results = [json.loads(line) for line in lines]
    assert [r["status"] for r in results] == ["error"] * 3, results
    why = f"the launcher on {host} died (killed by SIGKILL)"
    assert all(r["error"].startswith(why) for r in results), results
    assert f"3 x error on victim: {why}" in stderr, stderr
