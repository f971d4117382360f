"""Machines, not runners, own CPUs (SPEC 17), on the test Slurm: its three nodes, all on this host, share one
core allocator with a local runner and an SSH runner to 127.0.0.1 (the real sshd fixture); a node with too
few cores for ``whole_cores=True`` is an error, not a hang.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.cpu_spans import HOST, SPAN, log_of, needs_two_cpus, shared_cpu_at_once, spans, write_spans_config
from tests.helpers import write_config
from tests.machine_tree import same_machine
from tests.slurm import SlurmCluster
from tests.sshd import HOST_ALIAS, SshdServer


@needs_two_cpus
def test_shared_machines_local_ssh_and_slurm_nodes_never_lease_a_cpu_twice(
        sshd_server: SshdServer, slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    slurm_cluster.wait_idle()
    try:
        write_spans_config(tmp_path, f"""
            from parallux import goal
            local = goal.local(workspace={str(tmp_path / "local")!r}, core_pool=[0, 1])
            server = goal.ssh("server", host=goal.args["host"], workspace={str(tmp_path / "server")!r}, core_pool=[1])
            cluster = goal.slurm("cl", nodes=3, workspace={str(tmp_path / "cl")!r}, core_pool=[0, 1])
            goal.setRunner([local, server, cluster])
            handles = [runner.run({SPAN!r}, name=f"{{runner.name}}{{i}}")
                       for runner in (local, server, cluster) for i in range(4)]
            results = [h.sync() for h in handles]
        """)
        env = dict(slurm_cluster.env, HOME=str(sshd_server.home))  # (the client home holds the ssh config)
        env.pop("PYTHONPATH", None)
        env.pop("SSH_AUTH_SOCK", None)
        done = subprocess.run([sys.executable, "-m", "parallux", "config.py", "--", f"host={HOST_ALIAS}"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    finally:
        slurm_cluster.cancel_all()
    assert done.returncode == 0, done.stderr
    rows = spans(done.stdout)
    assert len(rows) == 12
    assert shared_cpu_at_once(rows) == []
    assert {name[:-1] for *_, name in ((r[4].split()[0],) for r in rows)} == {"local", "server", "cl"}
    assert all(len(own) == 1 for _, _, own, _, _ in rows)  # each bound to its one leased CPU
    line = next(line for line in done.stderr.splitlines() if "share machine" in line)
    assert re.fullmatch(rf"  runners local, server, cl@n1, cl@n2, cl@n3 share machine {re.escape(HOST)} "
                        r"\(one core allocator\)", line), line
    runners = {event["name"]: event for event in log_of(done.stderr) if event["event"] == "runner"}
    assert {name: event["machine"] for name, event in runners.items()} == {"local": HOST, "server": HOST, "cl": HOST}


@needs_two_cpus
def test_whole_cores_a_slurm_node_with_too_few_cores_is_an_error_not_a_hang(slurm_cluster: SlurmCluster,
                                                                            tmp_path: Path) -> None:
    """A Slurm runner learns its nodes' topology only when they connect: a request registered before that,
    which their physical cores cannot hold, ends error with the reason once they do (the node is refused)."""
    root = same_machine(tmp_path / "machine", [[0, 1]])
    slurm_cluster.wait_idle()
    try:
        write_config(tmp_path, f"""
            from parallux import goal
            node = goal.slurm("one", nodes=1, core_pool=[0, 1], whole_cores=True, workspace="ws",
                              env={{"PARALLUX_MACHINE_ROOT": {str(root)!r}}})
            node.run("true", threads=2).sync()
        """)
        env = dict(slurm_cluster.env, HOME=str(tmp_path))
        env.pop("PYTHONPATH", None)
        done = subprocess.run([sys.executable, "-m", "parallux", "config.py"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
    finally:
        slurm_cluster.cancel_all()
    assert done.returncode in (1, 2), done.stderr
    assert "threads=2 is more than the 1 physical core of the pool (whole_cores=True leases whole cores)" \
        in done.stderr
    assert "Traceback" not in done.stderr
