"""Memory as a resource (SPEC 18), through the real CLI: a command's ``memory=`` is reserved on its machine while it
runs, and a command waits while its machine has less unreserved than it asks; ``memory_pool=`` sets what there
is to reserve (default: the machine's memory less 10%). The reservation is parallux's bookkeeping; ``memory=``
is also a cgroup limit (issue 21), which needs the memory controller: without it these tests cannot run."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.helpers import peak_overlap, run_cli, write_config

SPAN = 's=$(date +%s.%N); sleep 0.4; echo "$s $(date +%s.%N)"'
PRINT = """
import json
for h in handles:
    r = h.sync()
    start, end = r.read_stdout().split()
    print(json.dumps({"name": r.name, "runner": r.runner_name, "start": float(start), "end": float(end)}))
"""
NO_CONTROLLER = "memory= needs a cgroup of its own per command, with the memory controller"


def run(tmp_path: Path, body: str) -> list[tuple[float, float]]:
    write_config(tmp_path, "from parallux import goal\n" + textwrap.dedent(body) + PRINT)
    done = run_cli(tmp_path, "config.py")
    if done.returncode == 2 and NO_CONTROLLER in done.stderr:
        pytest.skip(f"this machine has no cgroup memory controller for the commands' memory= limit: {done.stderr}")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return [(row["start"], row["end"]) for row in rows]


def test_memory_pool_six_of_400m_in_1g_never_more_than_two_at_once(tmp_path: Path) -> None:
    spans = run(tmp_path, f"""
        r = goal.local(workspace="ws", max_jobs=6, memory_pool="1G")
        handles = [r.run({SPAN!r}, name=f"m{{i}}", memory="400M") for i in range(6)]
    """)
    assert len(spans) == 6
    assert peak_overlap(spans) == 2  # 800 MiB reserved; a third would need 1200


def test_memory_pool_commands_without_memory_reserve_nothing(tmp_path: Path) -> None:
    spans = run(tmp_path, f"""
        r = goal.local(workspace="ws", max_jobs=4, memory_pool="1G")
        handles = [r.run({SPAN!r}, name="big", memory="900M")] + [r.run({SPAN!r}, name=f"p{{i}}") for i in range(3)]
    """)
    assert peak_overlap(spans) == 4


def test_memory_pool_two_runners_of_one_machine_share_it_and_the_smallest_wins(tmp_path: Path) -> None:
    write_config(tmp_path, f"""
        from parallux import goal
        a = goal.local("a", workspace="ws", max_jobs=6, memory_pool="1G")
        b = goal.local("b", workspace="ws", max_jobs=6, memory_pool="2G")
        goal.setRunner([a, b])
        handles = [goal.run({SPAN!r}, name=f"m{{i}}", memory="400M") for i in range(6)]
    """ + textwrap.indent(PRINT, "        "))
    done = run_cli(tmp_path, "config.py")
    if done.returncode == 2 and NO_CONTROLLER in done.stderr:
        pytest.skip(f"this machine has no cgroup memory controller for the commands' memory= limit: {done.stderr}")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert peak_overlap([(row["start"], row["end"]) for row in rows]) == 2
    notices = [line for line in done.stderr.splitlines() if "give different memory_pool=" in line]
    assert len(notices) == 1 and "(a 1 GiB, b 2 GiB): the smallest, 1 GiB," in notices[0], done.stderr


def test_memory_pool_more_than_the_machine_offers_is_exit_2_before_anything_runs(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        r = goal.local(workspace="ws")
        r.run("touch ran", name="first")
        r.run("true", name="huge", memory="2T")
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2, done.stderr
    assert "command 'huge' can never run: local: memory=2 TiB is more than the" in done.stderr
    assert "its machine offers (its machine's memory less 10%)" in done.stderr
    assert not list(tmp_path.glob("ws/**/ran"))
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws", memory_pool="1G").run("true", memory="1.5G")
    """)
    done = run_cli(tmp_path, "config.py", "--dry-run")
    assert done.returncode == 2 and "memory=1.5 GiB is more than the 1 GiB its machine offers (its memory_pool)" \
        in done.stderr, done.stderr


def test_memory_pool_is_checked_like_memory(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(memory_pool="lots")
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2 and "memory_pool='lots' is not a size" in done.stderr, done.stderr
