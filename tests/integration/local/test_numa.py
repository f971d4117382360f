"""Cores and NUMA with the real numactl, through the real CLI (nodes {0: [0], 1: [1]} on this 2-CPU machine)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.helpers import REPO, cli_env, peak_overlap, run_cli, write_config

AFFINITY = "grep Cpus_allowed_list /proc/self/status | cut -f2"


def test_numa_each_command_runs_on_exactly_its_lease(tmp_path: Path) -> None:
    write_config(tmp_path, f"""
        import json
        from parallux import goal
        r = goal.local(workspace="ws", numa_nodes={{0: [0], 1: [1]}})
        goal.setRunner(r)
        goal.schd("{AFFINITY}; echo $PARALLUX_CORES $PARALLUX_NUMA_NODE", name="n1", numa_node=1)
        goal.schd("{AFFINITY}; echo $PARALLUX_CORES $PARALLUX_NUMA_NODE", name="c0", cores=[0])
        goal.schd("{AFFINITY}; echo $PARALLUX_CORES x$PARALLUX_NUMA_NODE", name="both", threads=2)
        goal.schd("{AFFINITY}; echo $PARALLUX_CORES $PARALLUX_NUMA_NODE", name="any")
        out = {{}}
        for res in goal.issue().sync():
            out[res.name] = [list(res.cores), res.numa_node, res.read_stdout().split()]
        print(json.dumps(out))
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["n1"] == [[1], 1, ["1", "1", "1"]]
    assert out["c0"] == [[0], 0, ["0", "0", "0"]]
    assert out["both"] == [[0, 1], None, ["0-1", "0,1", "x"]]
    cores, node, seen = out["any"]
    assert len(cores) == 1 and seen == [str(cores[0]), str(cores[0]), str(node)]
    command_txt = next((tmp_path / "ws").rglob("*_n1/command.txt")).read_text()
    assert "numactl --physcpubind=1 --localalloc -- sh -c" in command_txt


def test_numa_node_goes_only_to_runners_that_declare_it(tmp_path: Path) -> None:
    # The runner without NUMA nodes comes first in the pool: a numa_node command must skip it, never run
    # there unpinned (docs/reference.md, command option numa_node).
    write_config(tmp_path, f"""
        import json
        from parallux import goal
        plain = goal.local(name="plain", workspace="ws")
        pooled = goal.local(name="pooled", workspace="ws", numa_nodes={{0: [0], 1: [1]}})
        goal.setRunner([plain, pooled])
        pinned = [goal.schd("{AFFINITY}; echo $PARALLUX_NUMA_NODE", numa_node=1) for _ in range(3)]
        free = goal.schd("true")
        goal.issue().sync()
        print(json.dumps([[h.runner_name, h.result.read_stdout().split()] for h in pinned] + [free.runner_name]))
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [["pooled", ["1", "1"]]] * 3 + ["plain"]


def test_numa_membind_option_binds_memory_to_the_node(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        r = goal.local(workspace="ws", numa_nodes={0: [0, 1]}, membind=True)
        goal.run("grep Mems_allowed_list /proc/self/status", work_relpath="m", numa_node=0).sync()
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert "--membind=0" in (tmp_path / "ws" / "m" / "command.txt").read_text()
    assert (tmp_path / "ws" / "m" / "stdout.txt").read_text().split()[-1] == "0"


def test_numa_status_figures_are_live_inside_the_config(tmp_path: Path) -> None:
    write_config(tmp_path, """
        import json, os, time
        from parallux import goal
        r = goal.local(name="r", workspace="ws", numa_nodes={0: [0], 1: [1]}, max_jobs=4)
        goal.setRunner(r)
        before = r.status()
        sampled = os.path.abspath("sampled")
        h = goal.run(f"while [ ! -e {sampled} ]; do sleep 0.01; done", numa_node=1, timeout=60)
        while r.active_jobs() < 1:
            time.sleep(0.01)
        during, node1, node0 = r.status(), r.status(numa_node=1), goal.runner_status(r).__class__
        open(sampled, "w").close()  # the command runs until the figures during it are read
        h.sync()
        after = goal.runner_status()["r"]
        print(json.dumps([
            [before.configured_cores, before.configured_core_count, before.available_cores, before.active_jobs],
            [during.available_cores, during.available_core_count, during.active_jobs, during.available_jobs],
            [node1.configured_cores, node1.available_cores, r.available_cores(numa_node=0)],
            [after.available_cores, after.active_jobs, r.logical_core_count() == __import__("os").cpu_count()],
        ]))
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        [[0, 1], 2, [0, 1], 0],
        [[0], 1, 1, 3],
        [[1], [], [0]],
        [[0, 1], 0, True],
    ]


def test_numa_mixed_workload_fills_the_pool_without_deadlock(tmp_path: Path) -> None:
    stamp = "s=$(date +%s.%N); sleep 0.3; echo $s $(date +%s.%N) $PARALLUX_CORES"
    write_config(tmp_path, f"""
        from parallux import goal
        a = goal.local(name="a", workspace="wsa", numa_nodes={{0: [0], 1: [1]}}, max_jobs=2)
        b = goal.local(name="b", workspace="wsb", core_pool=[0, 1], max_jobs=2)
        goal.setRunner([a, b])
        for i in range(24):
            kind = i % 4
            if kind == 0:
                goal.schd("{stamp}", threads=2)
            elif kind == 1:
                goal.schd("{stamp}", runner=a, cores=[1])
            elif kind == 2:
                goal.schd("{stamp}", runner=a, numa_node=0)
            else:
                goal.schd("{stamp}")
        goal.issue().sync()
    """)
    done = run_cli(tmp_path, "config.py", timeout=120)
    assert done.returncode == 0, done.stderr
    spans = []
    for path in tmp_path.glob("ws*/**/stdout.txt"):
        start, end, cores = path.read_text().split()
        spans += [(float(start), float(end))] * len(cores.split(","))
    assert len(spans) == 24 + 6  # (the six threads=2 commands count twice)
    # Both runners are on this machine, so they lease from its one set of CPUs (SPEC 17): every CPU of the
    # pools busy at some instant, never more
    assert peak_overlap(spans) == 2


def test_numa_pool_without_numactl_fails_before_anything_runs(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "touch"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    write_config(tmp_path, """
        from parallux import goal
        plain = goal.local(name="plain", workspace="ws")
        plain.run("touch ran")
        pooled = goal.local(name="pooled", workspace="ws", core_pool=[0])
    """)
    done = run_cli(tmp_path, "config.py", env=cli_env(tmp_path, PATH=str(bin_dir)))
    assert done.returncode == 1  # a command had already been started when the runner was refused
    assert "numactl is not installed" in done.stderr and "'pooled'" in done.stderr
    write_config(tmp_path, """
        from parallux import goal
        pooled = goal.local(name="pooled", workspace="ws", core_pool=[0])
    """)
    done = run_cli(tmp_path, "config.py", env=cli_env(tmp_path, PATH=str(bin_dir)))
    assert done.returncode == 2 and "numactl is not installed" in done.stderr


def test_numa_example_runs(tmp_path: Path) -> None:
    done = run_cli(tmp_path, str(REPO / "examples" / "numa.py"), "--", f"workspace={tmp_path / 'ws'}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["job1", "(0,)", "0", "0", "job2", "(0,)", "0", "0"]
