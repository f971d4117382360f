"""A core pool may name only the CPUs the runner's machine has and lets parallux use (SPEC 11), through the
real CLI: a core beyond them is a ConfigError before anything runs, not numactl's usage text later."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import run_cli, write_config

CPUS = sorted(os.sched_getaffinity(0))
BEYOND = max(CPUS) + 1


@pytest.mark.parametrize("layout", [
    f"core_pool=range({BEYOND + 6})",
    f"numa_nodes={{0: [{CPUS[0]}], 1: [{BEYOND}, {BEYOND + 1}, {BEYOND + 2}]}}",
    f"core_pool=range({BEYOND + 6}), numa_nodes={{0: [{CPUS[0]}]}}",
])
@pytest.mark.parametrize("dry_run", [False, True])
def test_cpus_a_core_the_machine_lacks_is_refused_before_anything_runs(
        tmp_path: Path, layout: str, dry_run: bool) -> None:
    write_config(tmp_path, f"""
        from parallux import goal
        early = goal.local(name="early", workspace="ws")
        pooled = goal.local(name="pooled", workspace="ws", {layout})
        early.run("touch ../../ran-anyway")
        pooled.run("true", threads=4)
    """)
    done = run_cli(tmp_path, "config.py", *(["--dry-run"] if dry_run else []))
    assert done.returncode == 2, done.stderr
    assert "ConfigError: goal.local(): runner 'pooled': core_pool/numa_nodes name CPU" in done.stderr
    assert str(BEYOND) in done.stderr and "which this machine does not have" in done.stderr
    assert 'config.py", line 4' in done.stderr
    assert "numactl" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "ran-anyway").exists()


def test_cpus_the_message_lists_the_cpus_parallux_may_use(tmp_path: Path) -> None:
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(core_pool=[{BEYOND + 10}])
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2, done.stderr
    assert f"name CPU {BEYOND + 10}, which" in done.stderr
    if CPUS == list(range(CPUS[0], CPUS[-1] + 1)) and len(CPUS) > 1:
        assert f"; it has CPUs {CPUS[0]}-{CPUS[-1]}\n" in done.stderr


def test_cpus_every_cpu_parallux_may_use_is_accepted(tmp_path: Path) -> None:
    write_config(tmp_path, f"""
        from parallux import goal
        r = goal.local(workspace="ws", core_pool={CPUS!r})
        print(r.run("echo $PARALLUX_CORES", threads={len(CPUS)}).sync().read_stdout().strip())
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ",".join(map(str, CPUS))
