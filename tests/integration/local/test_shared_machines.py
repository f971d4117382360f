"""Machines, not runners, own CPUs (SPEC 17), through the real CLI: runners on one machine -- a local runner, an
SSH runner to 127.0.0.1 (the real sshd fixture), the three nodes of the Slurm fixture, all on this host --
share one core allocator; the launchers and the commands without a lease keep off the pools' CPUs;
``whole_cores=True`` leases physical cores (siblings from a fake topology, PARALLUX_MACHINE_ROOT)."""

from __future__ import annotations

from pathlib import Path

from tests.cpu_spans import CPUS, HOST, SPAN, log_of, needs_two_cpus, shared_cpu_at_once, spans, write_spans_config
from tests.helpers import cli_env, run_cli, write_config
from tests.machine_tree import same_machine


# --- one allocator per machine ----------------------------------------------------------------------------------


@needs_two_cpus
def test_shared_machines_two_local_runners_with_one_pool_take_turns(tmp_path: Path) -> None:
    write_spans_config(tmp_path, f"""
        from parallux import goal
        a = goal.local("a", workspace="ws", core_pool=[0, 1])
        b = goal.local("b", workspace="ws", core_pool=[0, 1])
        handles = [runner.run({SPAN!r}, name=f"{{runner.name}}{{i}}", threads=2) for runner in (a, b) for i in range(2)]
        results = [h.sync() for h in handles]
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    rows = spans(done.stdout)
    assert len(rows) == 4 and shared_cpu_at_once(rows) == []
    assert "  runners a, b share machine" in done.stderr


def test_shared_machines_one_runner_alone_has_no_sharing_line(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws").run("true")
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert "share machine" not in done.stderr
    runner = next(event for event in log_of(done.stderr) if event["event"] == "runner")
    assert runner["machine"] == HOST


# --- the launchers and the commands without a lease -------------------------------------------------------------


@needs_two_cpus
def test_shared_machines_unpinned_commands_and_launchers_keep_off_the_pool(tmp_path: Path) -> None:
    write_spans_config(tmp_path, f"""
        from parallux import goal
        pinned = goal.local("pinned", workspace="ws", core_pool=[1])
        free = goal.local("free", workspace="ws")
        results = [free.run({SPAN!r}, name="unpinned").sync(), pinned.run({SPAN!r}, name="leased").sync()]
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    (_, _, own, launcher, name), (_, _, own_leased, launcher_leased, _) = spans(done.stdout)
    assert (own, launcher) == ({0}, {0}), name  # the unpinned command and its launcher: CPU 0, off the pool
    assert (own_leased, launcher_leased) == ({1}, {0})  # the leased one on its CPU, its launcher off it
    assert "share the pinned CPUs" not in done.stderr


@needs_two_cpus
def test_shared_machines_pools_over_every_cpu_say_unpinned_commands_share_them(tmp_path: Path) -> None:
    write_spans_config(tmp_path, f"""
        from parallux import goal
        pinned = goal.local("pinned", workspace="ws", core_pool=[0, 1])
        free = goal.local("free", workspace="ws")
        results = [free.run({SPAN!r}, name="unpinned").sync()]
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    (_, _, own, launcher, _), = spans(done.stdout)
    assert own == launcher == set(CPUS)
    said = [line for line in done.stderr.splitlines() if "share the pinned CPUs" in line]
    assert said == [f"parallux: the core pools of machine {HOST} (runner pinned) cover every CPU: commands "
                    "without a core lease, and the launchers, share the pinned CPUs"]


# --- whole cores -------------------------------------------------------------------------------------------------


@needs_two_cpus
def test_whole_cores_a_lease_binds_one_thread_and_keeps_the_sibling_idle(tmp_path: Path) -> None:
    """This machine's CPUs 0 and 1 as two threads of one core (a fake topology with this machine's identity):
    a whole-core lease binds CPU 0 and keeps CPU 1 idle, from its own runner's commands and another runner's."""
    root = same_machine(tmp_path / "machine", [[0, 1]])
    write_spans_config(tmp_path, f"""
        from parallux import goal
        whole = goal.local("whole", workspace="ws", core_pool=[0, 1], whole_cores=True,
                           env={{"PARALLUX_MACHINE_ROOT": {str(root)!r}}})
        plain = goal.local("plain", workspace="ws", core_pool=[1])
        handles = [whole.run({SPAN!r}, name=f"whole{{i}}") for i in range(3)]
        handles += [plain.run({SPAN!r}, name=f"plain{{i}}") for i in range(2)]
        results = [h.sync() for h in handles]
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    rows = spans(done.stdout)
    assert [(own, name.split()[1]) for _, _, own, _, name in rows[:3]] == [({0}, "0")] * 3
    everything = [(start, end, {0, 1}, launcher, name) if name.startswith("whole") else (start, end, own, launcher, name)
                  for start, end, own, launcher, name in rows]  # a whole-core lease holds both threads
    assert shared_cpu_at_once(everything) == []


@needs_two_cpus
def test_whole_cores_limits_and_the_dry_run_plan(tmp_path: Path) -> None:
    root = same_machine(tmp_path / "machine", [[0, 1]])
    write_config(tmp_path, f"""
        from parallux import goal
        whole = goal.local("whole", workspace="ws", core_pool=[0, 1], whole_cores=True,
                           env={{"PARALLUX_MACHINE_ROOT": {str(root)!r}}})
        if goal.args.get("wide"):
            whole.run("true", threads=2)
        for i in range(2):
            whole.run("true", name=f"w{{i}}")
    """)
    done = run_cli(tmp_path, "config.py", "--dry-run")
    assert done.returncode == 0, done.stderr
    plan = [line for line in done.stdout.splitlines() if line.startswith("w")]
    assert len(plan) == 2 and all("\tcores=0\t" in line and "--physcpubind=0 " in line for line in plan), done.stdout
    done = run_cli(tmp_path, "config.py", "--", "wide=1")
    assert done.returncode == 2, done.stderr
    assert "threads=2 is more than the 1 physical core of the pool (whole_cores=True leases whole cores)" \
        in done.stderr


def test_whole_cores_is_checked_like_every_runner_option(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(core_pool=[0], whole_cores="yes")
    """)
    done = run_cli(tmp_path, "config.py", env=cli_env(tmp_path))
    assert done.returncode == 2
    assert "whole_cores must be True or False" in done.stderr and "Traceback" not in done.stderr
