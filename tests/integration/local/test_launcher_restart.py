"""A local runner whose launcher died starts a new one and goes on: its retries and its queue run there.

Through the real CLI. Each command writes, into a directory of the test's, a file named by its shell's pid
(which ``exec sleep`` keeps) holding its work relpath and its ancestry from /proc: its shell's parent is the
launcher, its parent the guardian (see test_launcher_death.py). So the test kills exactly the
launcher it means, and knows which processes were that launcher's. The runner has a core pool of two CPUs
and ``max_jobs=2``: the dead launcher's commands must give back their cores for anything to run again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import kill_pids, new_token, pids_with_env, start_cli, wait_until, write_config

CPUS = sorted(os.sched_getaffinity(0))[:2]
ANCESTRY = 'p=$$; a=""; for i in 1 2; do p=$(cut -d" " -f4 /proc/$p/stat); a="$a $p"; done'


def command(seen: Path, killed: Path, go: Path) -> str:
    """Before the test kills the launcher (``killed`` exists) a command sleeps; after, it waits for ``go``."""
    return (f'{ANCESTRY}; echo "$PARALLUX_WORK_RELPATH$a ${{LATER:-unset}}" > {seen}/$$; '
            f'if [ -e {killed} ]; then while [ ! -e {go} ]; do sleep 0.05; done; echo fine; '
            f'else exec sleep 600; fi')


def gated_command(seen: Path, go: Path) -> str:
    """A command waits until the test creates ``go/<its work dir's name>``."""
    return (f'{ANCESTRY}; echo "$PARALLUX_WORK_RELPATH$a ${{LATER:-unset}}" > {seen}/$$; '
            f'while [ ! -e {go}/${{PARALLUX_WORK_RELPATH##*/}} ]; do sleep 0.05; done; echo fine')


def config(tmp_path: Path, token: str, count: int, retries: int, gated: bool = False) -> Path:
    seen, killed, go = tmp_path / "seen", tmp_path / "killed", tmp_path / "go"
    seen.mkdir()
    go.mkdir()
    text = gated_command(seen, go) if gated else command(seen, killed, go / "all")
    return write_config(tmp_path, f"""
        import json
        import os
        from parallux import goal
        victim = goal.local("victim", workspace={str(tmp_path / "ws")!r}, max_jobs=2, core_pool={CPUS!r})
        goal.setRunner([victim])
        goal.setRetries({retries})
        for i in range({count}):
            goal.schd({text!r}, name=f"c{{i}}", env={{"TOKEN": {token!r}}}, check=False)
        group = goal.issue()
        os.environ["LATER"] = "set"  # (after its launcher started: not in its environment, nor a new one's)
        for r in group.sync():
            print(json.dumps({{"name": r.name, "status": r.status, "error": r.error,
                               "attempts": [[a["runner"], a["status"]] for a in r.attempts]}}))
        print(victim.facts["hostname"], victim.status().available_core_count)
    """)


def seen(tmp_path: Path) -> dict[int, tuple[str, int, int]]:
    """Every attempt that started so far: its shell's pid -> (its work relpath, its launcher, its guardian)."""
    found = {}
    for path in (tmp_path / "seen").iterdir():
        words = path.read_text().split()
        if len(words) == 4:
            assert words[3] == "unset", words  # a new launcher has the environment the first one had
            found[int(path.name)] = (words[0], int(words[1]), int(words[2]))
    return found


def running_on(tmp_path: Path, launcher: int | None = None, other_than: int | None = None) -> dict[int, str]:
    """The attempts (shell pid -> work relpath) that started on ``launcher``, or on any other than ``other_than``."""
    return {pid: name for pid, (name, on, _) in seen(tmp_path).items()
            if (launcher is None or on == launcher) and (other_than is None or on != other_than)}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def finish(process: subprocess.Popen[str], token: str) -> tuple[str, str]:
    try:
        return process.communicate(timeout=120)
    finally:
        process.kill()
        kill_pids(pids_with_env(token))


def log_events(path: Path, event: str) -> list[dict]:
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == event]


DEATHS = [("launcher", signal.SIGKILL, "killed by SIGKILL"), ("guardian", signal.SIGKILL, "killed by SIGKILL"),
          ("launcher", signal.SIGTERM, "it got SIGTERM")]


@pytest.mark.parametrize("victim, signum, how", DEATHS, ids=[f"{v}-{s.name}" for v, s, _ in DEATHS])
def test_a_local_runner_restarts_its_killed_launcher_and_runs_the_retries_and_the_queue_there(
        tmp_path: Path, victim: str, signum: signal.Signals, how: str) -> None:
    """Once, the runner was lost for the rest of the run: the two retries and the two queued commands ended
    "no runner left to run it". Now a new launcher takes them, and nothing of the old one survives -- whichever
    of its two processes died, however."""
    token = new_token()
    process = start_cli(tmp_path, str(config(tmp_path, token, count=4, retries=1)), "--log", "run.jsonl")
    try:
        assert wait_until(lambda: len(seen(tmp_path)) == 2, timeout=60), (seen(tmp_path), process.poll())
        first = seen(tmp_path)
        [(launcher, guardian)] = {(on, guarding) for _, on, guarding in first.values()}  # one launcher runs both
        (tmp_path / "killed").touch()
        os.kill(launcher if victim == "launcher" else guardian, signum)
        # max_jobs=2: two of the four (the retries first, in line) run on the new launcher, waiting for "go"
        wait_until(lambda: len(running_on(tmp_path, other_than=launcher)) == 2 or process.poll() is not None,
                   timeout=60)
        assert len(running_on(tmp_path, other_than=launcher)) == 2, (seen(tmp_path), process.poll())
        [(restarted, _)] = {(on, g) for _, on, g in seen(tmp_path).values() if on != launcher}
        assert sorted(running_on(tmp_path, restarted).values()) == sorted(name for name, _, _ in first.values())
        survivors = [pid for pid in [launcher, guardian, *first] if alive(pid)]
        assert survivors == [], survivors  # the old launcher's tree was swept before the new one took over
        (tmp_path / "go" / "all").touch()
    finally:
        stdout, stderr = finish(process, token)
    assert process.returncode == 0, stderr
    *lines, last = stdout.splitlines()
    host, free_cores = last.split()
    assert free_cores == "2", last
    results = {r["name"]: r for r in map(json.loads, lines)}
    assert [r["status"] for r in results.values()] == ["ok"] * 4, results
    retried = sorted(name for name, r in results.items() if r["attempts"] == [["victim", "error"], ["victim", "ok"]])
    assert len(retried) == 2 and all(results[n]["attempts"] == [["victim", "ok"]] for n in results
                                     if n not in retried), results
    why = f"the launcher on {host} died ({how})"
    assert f"runner victim: launcher restarted 1 time ({why})" in stderr, stderr
    [event] = log_events(tmp_path / "run.jsonl", "launcher_restarted")
    assert event["runner"] == "victim" and event["reason"] == why and event["restarts"] == 1, event
    assert [e["error"] for e in log_events(tmp_path / "run.jsonl", "retrying")] == [why, why]
    assert wait_until(lambda: pids_with_env(token) == [], timeout=5), pids_with_env(token)


def launcher_children(parent: int) -> list[int]:
    """The launchers (their guardians) parallux started: its children that run _launcher.py."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == parent and b"_launcher.py" in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_a_launcher_that_dies_at_once_every_time_ends_the_runner_instead_of_looping(tmp_path: Path) -> None:
    """Every launcher is killed as soon as it appears: after three deaths in a row with no command completed,
    the runner is given up, and what waited for it ends "no runner left", saying so."""
    token = new_token()
    process = start_cli(tmp_path, str(config(tmp_path, token, count=3, retries=10)), "--log", "run.jsonl")
    killed: list[int] = []
    try:
        assert wait_until(lambda: len(seen(tmp_path)) == 2, timeout=60), (seen(tmp_path), process.poll())
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            for guardian in launcher_children(process.pid):
                if guardian not in killed:
                    os.kill(guardian, signal.SIGKILL)
                    killed.append(guardian)
            time.sleep(0.01)
    finally:
        stdout, stderr = finish(process, token)
    assert process.returncode == 0, stderr
    *lines, _ = stdout.splitlines()
    results = [json.loads(line) for line in lines]
    assert len(killed) == 3, (killed, stderr)
    assert [r["status"] for r in results] == ["error"] * 3, results
    given_up = "no runner left to run it (runner 'victim': 3 launchers in a row died with no command completed"
    assert all(r["error"].startswith(given_up) and "killed by SIGKILL" in r["error"] for r in results), results
    assert len(log_events(tmp_path / "run.jsonl", "launcher_restarted")) == 2
    assert "runner victim: launcher restarted 2 times" in stderr, stderr
    assert wait_until(lambda: pids_with_env(token) == [], timeout=5), pids_with_env(token)


def running(tmp_path: Path, released: set[str], dead: set[int]) -> dict[int, set[str]]:
    """Per live launcher, the commands waiting on it (started there, not released by the test)."""
    found: dict[int, set[str]] = {}
    for name, launcher, _ in seen(tmp_path).values():
        if launcher not in dead and name not in released:
            found.setdefault(launcher, set()).add(name)
    return found


def test_launchers_that_die_after_commands_completed_are_restarted_every_time(tmp_path: Path) -> None:
    """A command completed between two deaths: no launcher dying at once. Three launchers killed, each (but the
    first) after one of its commands completed, are three restarts -- not a runner given up after three
    deaths -- and every command ends ``ok``."""
    token = new_token()
    process = start_cli(tmp_path, str(config(tmp_path, token, count=4, retries=3, gated=True)), "--log", "run.jsonl")
    released: set[str] = set()
    dead: set[int] = set()

    def two_waiting() -> tuple[int, set[str]] | None:
        busy = [(launcher, names) for launcher, names in running(tmp_path, released, dead).items() if len(names) == 2]
        return busy[0] if busy else None

    def release(name: str) -> None:
        released.add(name)
        (tmp_path / "go" / name.rsplit("/", 1)[1]).touch()

    try:
        for death in range(3):
            wait_until(lambda: two_waiting() is not None or process.poll() is not None, timeout=60)
            assert two_waiting() is not None, (death, seen(tmp_path), process.poll())
            launcher, names = two_waiting()  # type: ignore[misc]
            if death:  # one completes on this launcher; the next command takes its slot
                release(min(names))
                wait_until(lambda: two_waiting() is not None or process.poll() is not None, timeout=60)
                assert two_waiting() is not None and two_waiting()[0] == launcher, (death, seen(tmp_path))  # type: ignore[index]
            dead.add(launcher)
            os.kill(launcher, signal.SIGKILL)
        wait_until(lambda: two_waiting() is not None or process.poll() is not None, timeout=60)
        assert two_waiting() is not None, (seen(tmp_path), process.poll())
        for name, _, _ in seen(tmp_path).values():
            release(name)
    finally:
        stdout, stderr = finish(process, token)
    assert process.returncode == 0, stderr
    *lines, _ = stdout.splitlines()
    results = [json.loads(line) for line in lines]
    assert [r["status"] for r in results] == ["ok"] * 4, results
    assert sum(len(r["attempts"]) for r in results) == 4 + 6, results  # 2 commands cut short by each death
    assert "runner victim: launcher restarted 3 times" in stderr, stderr
    assert [e["restarts"] for e in log_events(tmp_path / "run.jsonl", "launcher_restarted")] == [1, 2, 3]
