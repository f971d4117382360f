"""Slurm's reach, through the real CLI on the test's own Slurm (tests/slurm.py): a cluster reached over SSH
(``goal.slurm(login=...)``, through the test sshd on 127.0.0.1), and allocations that can never start."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import new_token, pids_with_env, run_cli, write_config
from tests.slurm import MARK_VAR, SlurmCluster
from tests.sshd import HOST_ALIAS, SshdServer, start_sshd
from tests.slurm_cli import left_on_nodes, log_of, run, wait_for


@pytest.fixture
def cluster(slurm_cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    slurm_cluster.wait_idle()
    yield slurm_cluster
    slurm_cluster.cancel_all()


@pytest.fixture
def lenient(slurm_lenient: SlurmCluster) -> Iterator[SlurmCluster]:
    slurm_lenient.wait_idle()
    yield slurm_lenient
    slurm_lenient.cancel_all()


@pytest.fixture(scope="module")
def login_host(slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    """The test sshd on 127.0.0.1 as the cluster's login host: its sessions (and so the sruns, steps and
    commands they start) find the cluster through SLURM_CONF and carry its mark; parallux's own environment
    has neither, so nothing of Slurm can work from where parallux runs."""
    env = " ".join(f"{key}={slurm_cluster.env[key]}" for key in ("SLURM_CONF", MARK_VAR, "SBATCH_OUTPUT"))
    server = start_sshd(tmp_path_factory.mktemp("login-sshd"), extra_config=f"SetEnv {env}")
    try:
        yield server
    finally:
        server.stop()


def laptop_env(login_host: SshdServer) -> dict[str, str]:
    """parallux's environment on "the laptop": the login host's ssh config, no Slurm."""
    env = {k: v for k, v in login_host.client_env().items() if not k.startswith("SLURM_") and k != MARK_VAR}
    env.pop("PYTHONPATH", None)
    return env


def start_on_laptop(login_host: SshdServer, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "parallux", "config.py"], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=laptop_env(login_host))


def ends_clean(cluster: SlurmCluster, token: str) -> None:
    """No job queued, nothing of the run left on the nodes nor on the login host (its sruns, its watcher)."""
    wait_for("the queue to empty", lambda: not cluster.jobs())
    wait_for("every process of the run to end", lambda: not left_on_nodes(cluster) and not pids_with_env(token))


# -- a cluster reached over SSH --------------------------------------------------------------------------------

def test_a_campaign_runs_across_the_nodes_through_the_login_host(cluster: SlurmCluster, login_host: SshdServer,
                                                                 tmp_path: Path) -> None:
    token = new_token()
    write_config(tmp_path, f"""
        from parallux import goal
        cl = goal.slurm("cl", nodes=3, max_jobs=1, workspace={str(tmp_path / 'ws')!r}, login={HOST_ALIAS!r})
        print("job", cl.job_id, flush=True)
        goal.setRunner(cl)
        for i in range(9):
            goal.schd("echo $PARALLUX_NODE; sleep 0.3", name=f"c{{i}}", env={{"TOKEN": "{token}"}})
        results = goal.issue().sync()
        print("hosts", sorted({{r.host for r in results}}))
        print("read", sorted({{r.read_stdout().strip() for r in results}}))
        print("status", cl.status().max_jobs, sorted(cl.nodes))
    """)
    proc = start_on_laptop(login_host, tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    job = out.split()[1]
    assert "hosts ['n1', 'n2', 'n3']" in out and "read ['n1', 'n2', 'n3']" in out, out
    assert "status 3 ['n1', 'n2', 'n3']" in out
    assert f"job {job} running on n[1-3]" in err
    assert {e["host"] for e in log_of(err) if e["event"] == "finished"} == {"n1", "n2", "n3"}
    assert subprocess.run(["squeue"], env=laptop_env(login_host), capture_output=True).returncode != 0  # (no
    # Slurm where parallux ran: everything went through the login host)
    ends_clean(cluster, token)


@pytest.mark.parametrize("how", ["ctrl-c", "sigkill"])
def test_stopping_parallux_cleans_the_cluster_behind_the_login_host(cluster: SlurmCluster, login_host: SshdServer,
                                                                    tmp_path: Path, how: str) -> None:
    # (reconnect=0: after a SIGKILL of parallux the login runner's own launcher would otherwise wait out its
    # grace for a reconnection before it ends, see tests/integration/ssh/test_ssh_reconnect.py)
    token = new_token()
    write_config(tmp_path, f"""
        from parallux import goal
        login = goal.ssh("login", host={HOST_ALIAS!r}, workspace={str(tmp_path / 'login-ws')!r}, reconnect=0)
        goal.setRunner(goal.slurm("cl", nodes=3, workspace={str(tmp_path / 'ws')!r}, login=login))
        for i in range(9):
            goal.schd("sleep 300", env={{"TOKEN": "{token}"}})
        goal.issue()
    """)
    proc = start_on_laptop(login_host, tmp_path)
    try:
        wait_for("the commands to run", lambda: len(pids_with_env(token)) >= 3)
        if how == "ctrl-c":
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
            assert proc.returncode == 130
        else:
            proc.kill()
            proc.communicate(timeout=10)
        ends_clean(cluster, token)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_sigkill_while_pending_through_the_login_host_cancels_the_job(cluster: SlurmCluster, login_host: SshdServer,
                                                                    tmp_path: Path) -> None:
    """No launcher runs yet, so nothing on the nodes notices parallux is gone: the login host's watcher,
    whose input was parallux's connection, cancels the job."""
    holder = cluster.run("sbatch", "--parsable", "-N1", "--exclusive", "--wrap", "sleep 300").stdout.strip()
    wait_for("the holder to run", lambda: any(j == holder and s == "RUNNING" for j, s, _ in cluster.jobs()))
    write_config(tmp_path, f"""
        from parallux import goal
        everything = goal.slurm("all", nodes=3, workspace={str(tmp_path / 'ws')!r}, login={HOST_ALIAS!r})
        print("job", everything.job_id, flush=True)
        goal.setRunner(everything)
        goal.run("true").sync()
    """)
    proc = start_on_laptop(login_host, tmp_path)
    try:
        assert proc.stdout is not None
        job = proc.stdout.readline().split()[1]
        assert any(j == job and s == "PENDING" for j, s, _ in cluster.jobs())
        proc.kill()
        proc.communicate(timeout=10)
        wait_for("the pending allocation to be cancelled", lambda: job not in [j for j, _, _ in cluster.jobs()])
        wait_for("the login host's watcher to end", lambda: not [p for p in cluster.processes() if "read -r id" in p])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


# -- allocations that can never start ---------------------------------------------------------------------------

def test_a_time_limit_beyond_the_partitions_fails_the_runner_and_work_goes_elsewhere(lenient: SlurmCluster,
                                                                                     tmp_path: Path) -> None:
    """Partition ``tiny`` allows 1 minute, the runner asks 5: Slurm (EnforcePartLimits=NO, its default)
    accepts the job, which would pend for ever (PartitionTimeLimit). The runner fails with that reason, its
    job is cancelled, the queued commands run on the other runner, and the one pinned to it ends error."""
    write_config(tmp_path, """
        from parallux import goal
        tiny = goal.slurm("tiny", partition="tiny", time="5", workspace="ws")
        print("job", tiny.job_id, flush=True)
        here = goal.local(workspace="ws-local")
        goal.setRunner([tiny, here])
        results = [goal.run("echo ran", name=f"free{i}").sync() for i in range(3)]
        print("free", sorted({(r.status, r.runner_name) for r in results}))
        pinned = goal.run("echo never", name="pinned", runner=tiny, check=False).sync()
        print("pinned", pinned.status, pinned.error)
        print("status", tiny.status().waiting)
        goal.run("echo never", name="checked", runner=tiny)
    """)
    done = run(lenient, tmp_path, "config.py", timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr  # a command that could not run, under check=True
    lines = done.stdout.splitlines()
    job = lines[0].split()[1]
    assert "free [('ok', 'local')]" in lines, done.stdout
    pinned = next(line for line in lines if line.startswith("pinned "))
    assert pinned.startswith(f"pinned error no runner left to run it (slurm runner 'tiny'"), pinned
    assert f"job {job} can never start: PartitionTimeLimit: its time limit is longer than the partition's" \
        in pinned, pinned
    assert f"status job {job} can never start: PartitionTimeLimit" in done.stdout
    assert f"slurm runner 'tiny': job {job} can never start: PartitionTimeLimit" in done.stderr  # (the notice)
    assert "command 'checked'" in done.stderr and "PartitionTimeLimit" in done.stderr
    wait_for("the job to be cancelled", lambda: not lenient.jobs())


def test_a_nodelist_naming_a_drained_node_fails_the_runner(cluster: SlurmCluster, tmp_path: Path) -> None:
    cluster.run("scontrol", "update", "nodename=n2", "state=drain", "reason=parallux-test")
    try:
        write_config(tmp_path, """
            from parallux import goal
            two = goal.slurm("two", sbatch_options={"nodelist": "n2"}, workspace="ws")
            print("job", two.job_id, flush=True)
            goal.setRunner(two)
            goal.run("echo never", name="c").sync()
        """)
        done = run(cluster, tmp_path, "config.py", timeout=120)
        assert done.returncode == 1, done.stdout + done.stderr
        job = done.stdout.split()[1]
        assert (f"job {job} can never start: ReqNodeNotAvail: nodes it requires are down or drained (n2 drained)"
                in done.stderr), done.stderr
        assert "command 'c'" in done.stderr
        wait_for("the job to be cancelled", lambda: not cluster.jobs())
    finally:
        cluster.run("scontrol", "update", "nodename=n2", "state=resume")
        cluster.wait_idle()


def test_login_must_be_an_ssh_runner(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.slurm("cl", login=goal.local(workspace="ws"))
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2, done.stderr
    assert "goal.slurm('cl'): login= must be an SSH runner (goal.ssh()), its name or a host, not runner 'local'" \
        in done.stderr, done.stderr
