"""Slurm runners through the real CLI on the test's own three-node Slurm (tests/slurm.py): placement and
per-node limits, core leases, timeouts, files, a run inside an allocation, a pending allocation, an
allocation that ends under the run (time limit, scancel), Ctrl-C and SIGKILL, and refusals."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, new_token, peak_overlap, pids_with_env, write_config
from tests.slurm import SlurmCluster
from tests.slurm_clock import ClockRun
from tests.slurm_cli import WAIT, env_of, left_on_nodes, log_of, run, wait_for


@pytest.fixture
def cluster(slurm_cluster: SlurmCluster) -> SlurmCluster:
    slurm_cluster.wait_idle()
    yield slurm_cluster
    slurm_cluster.cancel_all()


@contextlib.contextmanager
def started(cluster: SlurmCluster, cwd: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """The CLI running in the background; killed on the way out if the test left it running."""
    proc = subprocess.Popen([sys.executable, "-m", "parallux", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env_of(cluster, cwd))
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def ends_clean(cluster: SlurmCluster, token: str, timeout: float = WAIT) -> None:
    wait_for("the queue to empty", lambda: not cluster.jobs(), timeout)
    wait_for("every process on the nodes to end", lambda: not left_on_nodes(cluster) and not pids_with_env(token),
             timeout)


def test_commands_spread_over_the_nodes_under_per_node_limits(cluster: SlurmCluster, tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        nodes = goal.slurm("cl", nodes=3, max_jobs=1, workspace="ws")
        print("job", nodes.job_id, flush=True)
        goal.setRunner(nodes)
        for i in range(9):
            goal.schd('echo "$PARALLUX_NODE $(date +%s.%N)"; sleep 0.4; echo "$(date +%s.%N)"', name=f"c{i}")
        goal.schd("sleep 30", name="slow", timeout=1, check=False)
        results = goal.issue().sync()
        for r in results[:9]:
            print("ran", r.name, r.host, *r.read_stdout().split())
        print("slow", results[9].status)
        print("status", nodes.status().max_jobs, sorted(nodes.nodes))
    """)
    done = run(cluster, tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    job = lines[0].split()[1]
    ran = [line.split() for line in lines if line.startswith("ran ")]
    assert len(ran) == 9
    assert all(host == node for _, _, host, node, _, _ in ran)  # Result.host is the node it ran on
    by_node: dict[str, list[tuple[float, float]]] = {}
    for _, _, host, _, begin, end in ran:
        by_node.setdefault(host, []).append((float(begin), float(end)))
    assert sorted(by_node) == ["n1", "n2", "n3"]
    assert all(peak_overlap(spans) == 1 for spans in by_node.values())  # max_jobs=1 held on every node
    assert peak_overlap([span for spans in by_node.values() for span in spans]) >= 2  # and nodes in parallel
    assert "slow timeout" in lines
    assert "status 3 ['n1', 'n2', 'n3']" in lines
    assert f"job {job} running on n[1-3]" in done.stderr
    ended = [e for e in log_of(done.stderr) if e["event"] in ("retrying", "finished")]  # (an attempt each)
    assert {e["host"] for e in ended} == {"n1", "n2", "n3"}
    # The timeline: a block of lanes per node, no two bars of a lane overlapping (nodes share slot numbers)
    exported = subprocess.run([sys.executable, "-m", "parallux", "export", "--trace", "trace.json"], cwd=tmp_path,
                              capture_output=True, text=True, env=env_of(cluster, tmp_path))
    assert exported.returncode == 0, exported.stderr
    bars = [e for e in json.loads((tmp_path / "trace.json").read_text())["traceEvents"] if e["ph"] == "X"]
    by_lane: dict[int, list[tuple[float, float]]] = {}
    for bar in bars:
        by_lane.setdefault(bar["tid"], []).append((bar["ts"], bar["ts"] + bar["dur"]))
    assert len(by_lane) == 3 and all(peak_overlap(spans) == 1 for spans in by_lane.values())
    wait_for("the allocation to be cancelled", lambda: not cluster.jobs())


def test_core_leases_are_bound_by_numactl_inside_the_allocation(cluster: SlurmCluster, tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        node = goal.slurm("one", nodes=1, core_pool=[0, 1], workspace="ws")
        goal.setRunner(node)
        for i in range(4):
            goal.schd('echo "$PARALLUX_CORES $(grep Cpus_allowed_list /proc/self/status | cut -f2)"', threads=1)
        for r in goal.issue().sync():
            print("bound", r.cores, r.read_stdout().strip())
    """)
    done = run(cluster, tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    bound = [line.split(None, 2)[1:] for line in done.stdout.splitlines() if line.startswith("bound")]
    assert len(bound) == 4
    for _, text in bound:
        leased, allowed = text.split()
        assert leased == allowed and leased in ("0", "1")  # numactl bound each to its one leased core


def test_a_core_outside_the_allocation_refuses_the_node(cluster: SlurmCluster, tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.setRunner(goal.slurm("one", nodes=1, core_pool=[0, 7], workspace="ws"))
        goal.run("true")
    """)
    done = run(cluster, tmp_path, "config.py")
    assert done.returncode != 0
    assert "CPU" in done.stderr and "7" in done.stderr and "no runner left" in done.stderr, done.stderr
    wait_for("the allocation to be cancelled", lambda: not cluster.jobs())


def test_put_get_and_results_through_the_launchers(cluster: SlurmCluster, tmp_path: Path) -> None:
    tool = tmp_path / "kit" / "tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho tool on $PARALLUX_NODE > made.txt\n")
    tool.chmod(0o755)
    write_config(tmp_path, """
        from parallux import goal
        pair = goal.slurm("pair", nodes=2, workspace="ws")
        sent = pair.put("kit", "kit")
        print("sent", sent.files_sent, sent.files_skipped)
        goal.setRunner(pair)
        handles = [goal.run("$PARALLUX_WORK_DIR/../../kit/tool", work_relpath=f"w/{i}") for i in range(4)]
        for h in handles:
            h.sync()
        got = pair.get("w", "back")
        print("got", got.files_sent)
        print("read", handles[0].result.read_file("made.txt").strip())
    """)
    done = run(cluster, tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    # Both nodes' workspaces are this machine's ~/ws: the second node's quick check skips what the first sent.
    assert "sent 1 1" in done.stdout
    made = sorted((tmp_path / "back").glob("*/made.txt"))
    assert len(made) == 4 and all(p.read_text().startswith("tool on n") for p in made)
    assert "read tool on n" in done.stdout


def test_a_run_inside_an_allocation_uses_its_nodes(cluster: SlurmCluster, tmp_path: Path) -> None:
    write_config(tmp_path, """
        import os
        from parallux import goal
        here = goal.slurm("here", workspace="ws")
        print("job", here.job_id, os.environ["SLURM_JOB_ID"], sorted(here.nodes), flush=True)
        goal.setRunner(here)
        for r in [goal.run("echo $PARALLUX_NODE; sleep 0.3") for _ in range(6)]:
            print("node", r.sync().read_stdout().strip())
    """)
    script = tmp_path / "batch.sh"
    script.write_text(f"#!/bin/sh\ncd {tmp_path}\nexec {sys.executable} -m parallux config.py\n")
    out = tmp_path / "batch.out"
    job = cluster.run("sbatch", "--parsable", "-N2", "--exclusive", f"--output={out}",
                      f"--export=ALL,HOME={tmp_path}", str(script)).stdout.strip()
    wait_for("the batch job to end", lambda: not cluster.jobs(), timeout=60)
    text = out.read_text()
    assert f"job {job} {job} ['n1', 'n2']" in text, text
    nodes = {line.split()[1] for line in text.splitlines() if line.startswith("node ")}
    assert nodes == {"n1", "n2"}, text


def test_a_pending_allocation_queues_the_commands_until_it_runs(cluster: SlurmCluster, tmp_path: Path) -> None:
    holder = cluster.run("sbatch", "--parsable", "-N1", "--exclusive", "--wrap", "sleep 300").stdout.strip()
    wait_for("the holder to run", lambda: any(j == holder and s == "RUNNING" for j, s, _ in cluster.jobs()))
    write_config(tmp_path, """
        from parallux import goal
        everything = goal.slurm("all", nodes=3, max_jobs=1, workspace="ws")
        print("waiting", everything.status().waiting, flush=True)
        goal.setRunner(everything)
        for _ in range(6):
            goal.schd("echo $PARALLUX_NODE; sleep 0.5")
        print(sorted({r.read_stdout().strip() for r in goal.issue().sync()}))
    """)
    with started(cluster, tmp_path, "config.py") as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("waiting job ") and "pending" in first, first
        time.sleep(2)
        assert proc.poll() is None and not list((tmp_path / "ws").glob("*/*/stdout.txt"))  # nothing ran yet
        cluster.run("scancel", holder)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "['n1', 'n2', 'n3']" in out
    assert "pending" in err and "running on n[1-3]" in err


def test_scancel_from_outside_ends_commands_error_and_they_rerun_on_a_new_allocation(cluster: SlurmCluster,
                                                                                     tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        node = goal.slurm("one", nodes=1, workspace="ws")
        print("job", node.job_id, flush=True)
        goal.setRunner(node)
        # the first attempt waits to be cut short; the rerun ends at once
        r = goal.run("if [ -e $HOME/seen ]; then echo again; else touch $HOME/seen; sleep 300; fi", retries=1).sync()
        print("attempts", [a["status"] for a in r.attempts], r.read_stdout().strip(), node.job_id)
    """)
    with started(cluster, tmp_path, "config.py") as proc:
        assert proc.stdout is not None
        job = proc.stdout.readline().split()[1]
        wait_for("the first attempt to run", lambda: (tmp_path / "seen").exists())
        cluster.run("scancel", job)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    attempts = next(line for line in out.splitlines() if line.startswith("attempts"))
    assert attempts.startswith("attempts ['error', 'ok'] again ") and not attempts.endswith(f" {job}"), out
    assert "allocation ended" in err or "retrying" in err, err
    wait_for("the allocation to be cancelled", lambda: not cluster.jobs())


# slurmctld checks limits every 30 s: this run takes 60-90 s, so it starts early (tests/slurm_clock.py)
@pytest.mark.slurm_clock("""
    from parallux import goal
    node = goal.slurm("short", nodes=1, time="1", workspace="ws")
    goal.setRunner(node)
    first = node.job_id
    r = goal.run("if [ -e $HOME/seen ]; then echo again; else touch $HOME/seen; sleep 300; fi", retries=1).sync()
    print("attempts", [a["status"] for a in r.attempts], r.read_stdout().strip(), first != node.job_id)
""", timeout=180)
def test_the_time_limit_ends_commands_error_and_they_rerun_on_a_new_allocation(slurm_clock_run: ClockRun) -> None:
    cluster, done = slurm_clock_run.cluster, slurm_clock_run.result()
    assert done.returncode == 0, done.stderr
    assert "attempts ['error', 'ok'] again True" in done.stdout, done.stdout + done.stderr
    log = log_of(done.stderr)
    cut = [e for e in log if e["event"] == "retrying"]
    assert cut and cut[0]["status"] == "error" and cut[0]["host"] == "n1"
    wait_for("the allocation to be cancelled", lambda: not cluster.jobs())


@pytest.mark.parametrize("how", ["ctrl-c", "sigkill"])
def test_stopping_parallux_leaves_nothing_on_the_cluster(cluster: SlurmCluster, tmp_path: Path, how: str) -> None:
    token = new_token()
    write_config(tmp_path, f"""
        from parallux import goal
        goal.setRunner(goal.slurm("cl", nodes=3, workspace="ws"))
        for i in range(9):
            goal.schd("sleep 300", env={{"TOKEN": "{token}"}})
        goal.issue()
    """)
    with started(cluster, tmp_path, "config.py") as proc:
        wait_for("the commands to run", lambda: len(pids_with_env(token)) >= 3)
        if how == "ctrl-c":
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
            assert proc.returncode == 130
        else:
            proc.kill()
            proc.communicate(timeout=10)
        ends_clean(cluster, token)


def test_refusals_are_config_errors_before_anything_runs(cluster: SlurmCluster, tmp_path: Path) -> None:
    for options, phrase in [('partition="nope"', "partition"), ("time=5", "time must be a Slurm time limit"),
                            ('nodes=9', "nodes"), ('sbatch_options={"mem": "99999999"}', "sbatch refused")]:
        write_config(tmp_path, f"""
            from parallux import goal
            goal.setRunner(goal.slurm("cl", {options}))
            goal.run("true")
        """)
        for args in (["config.py"], ["--dry-run", "config.py"]):
            done = run(cluster, tmp_path, *args)
            assert done.returncode == 2 and phrase in done.stderr, (options, args, done.stderr)
    assert not cluster.jobs()


def test_a_dry_run_submits_nothing(cluster: SlurmCluster, tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.setRunner(goal.slurm("cl", nodes=2, cpus_per_node=1, workspace="ws"))
        for i in range(3):
            goal.schd("echo hi", name=f"c{i}")
        goal.put("build/tool", "stage/")  # made by a build the dry run plans, not there yet
    """)
    done = run(cluster, tmp_path, "--dry-run", "config.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("echo hi") == 3 and "cl" in done.stdout
    assert f"put {tmp_path / 'build/tool'} -> cl:stage/ (not there yet: made by the run)" in done.stdout
    assert not cluster.jobs()


def test_the_slurm_example_runs_from_a_login_node(cluster: SlurmCluster, tmp_path: Path) -> None:
    example = REPO / "examples" / "slurm.py"
    done = run(cluster, tmp_path, str(example), "--", "nodes=2", "time=10")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("size")]
    assert len(lines) == 6 and all(": ok on n" in line for line in lines), done.stdout
    assert {line.split(" on ")[1].split(":")[0] for line in lines} == {"n1", "n2"}
    assert all(line.endswith(": " + str(len(example.read_text().splitlines()))) for line in lines)
    wait_for("the allocation to be cancelled", lambda: not cluster.jobs())


def test_a_timeout_longer_than_the_time_limit_is_refused_when_registered(cluster: SlurmCluster,
                                                                         tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.setRunner(goal.slurm("short", nodes=1, time="1", workspace="ws"))
        goal.run("true", timeout=600)
    """)
    done = run(cluster, tmp_path, "config.py")
    assert done.returncode == 2, done.stderr
    assert "timeout (600 s) is longer than the allocation's time limit (60 s)" in done.stderr, done.stderr
    wait_for("the allocation to be cancelled", lambda: not cluster.jobs())


def test_a_halt_gives_the_allocation_back_while_the_config_goes_on(cluster: SlurmCluster, tmp_path: Path) -> None:
    write_config(tmp_path, """
        import subprocess, time
        from parallux import goal
        goal.setRunner(goal.slurm("cl", nodes=1, workspace="ws"))
        goal.setHalt("now")
        goal.schd("sleep 300", check=False)
        goal.schd("sleep 1; exit 3")
        goal.issue()
        def queue():
            return subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip() or "empty"
        deadline = time.monotonic() + 10  # the config goes on; the allocation must not wait for its end
        while queue() != "empty" and time.monotonic() < deadline:
            time.sleep(0.2)
        print("queue", queue())
    """)
    done = run(cluster, tmp_path, "config.py")
    assert "queue empty" in done.stdout, done.stdout + done.stderr


# a uses up 20 s of the allocation: the run starts early (tests/slurm_clock.py)
@pytest.mark.slurm_clock("""
    from parallux import goal
    node = goal.slurm("short", nodes=1, time="2", max_jobs=1, workspace="ws")  # 120 s
    goal.setRunner(node)
    first = node.job_id
    a = goal.run("sleep 20", timeout=30)
    b = goal.run("echo b", timeout=105)  # after a, less than 105 s are left: it needs a new allocation
    print("b", b.sync().status, first != node.job_id, round(b.result.start_time - a.sync().end_time))
""", timeout=100)  # without the renewal: ~120 s of idling
def test_an_allocation_with_too_little_time_left_is_renewed_at_once(slurm_clock_run: ClockRun) -> None:
    done = slurm_clock_run.result()
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("b "))
    status, renewed, waited = line.split()[1:]
    assert (status, renewed) == ("ok", "True") and int(waited) < 30, done.stdout + done.stderr
    assert "too little time left" in done.stderr


def test_sigkill_while_pending_cancels_the_pending_allocation(cluster: SlurmCluster, tmp_path: Path) -> None:
    holder = cluster.run("sbatch", "--parsable", "-N1", "--exclusive", "--wrap", "sleep 300").stdout.strip()
    wait_for("the holder to run", lambda: any(j == holder and s == "RUNNING" for j, s, _ in cluster.jobs()))
    write_config(tmp_path, """
        from parallux import goal
        everything = goal.slurm("all", nodes=3, workspace="ws")
        print("job", everything.job_id, flush=True)
        goal.setRunner(everything)
        goal.run("true").sync()
    """)
    with started(cluster, tmp_path, "config.py") as proc:
        assert proc.stdout is not None
        job = proc.stdout.readline().split()[1]
        assert any(j == job and s == "PENDING" for j, s, _ in cluster.jobs())
        proc.kill()
        proc.communicate(timeout=10)
        # its watcher cancels it: it must not start later and hold the nodes for nothing
        wait_for("the pending allocation to be cancelled", lambda: job not in [j for j, _, _ in cluster.jobs()],
                 timeout=10)


def test_nodes_given_inside_an_allocation_says_it_submits_another(cluster: SlurmCluster, tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.setRunner(goal.slurm("more", nodes=1, workspace="ws"))
        goal.schd("true")
    """)
    out = tmp_path / "batch.out"
    cluster.run("sbatch", "-N1", f"--output={out}", f"--export=ALL,HOME={tmp_path}",
                "--wrap", f"cd {tmp_path} && exec {sys.executable} -m parallux --dry-run config.py")
    wait_for("the batch job to end", lambda: not cluster.jobs(), timeout=60)
    text = out.read_text()
    assert "runs inside job" in text and "leave nodes= out" in text and "nothing was started" in text, text


@pytest.mark.parametrize("victim", ["launcher", "guardian"])
def test_a_killed_launcher_ends_commands_error_and_they_rerun_on_a_fresh_launcher(cluster: SlurmCluster,
                                                                                 tmp_path: Path, victim: str) -> None:
    """SIGKILL of the launcher on a node, or of its guardian (the step's task, which srun started): the command
    ends ``error`` naming the launcher's death, and its retry runs on the next launcher of that node."""
    write_config(tmp_path, """
        from parallux import goal
        node = goal.slurm("one", nodes=1, workspace="ws")
        goal.setRunner(node)
        # the first attempt writes its ancestry (its shell's parent is the launcher, then the guardian) and waits
        ancestry = 'p=$$; for i in 1 2; do p=$(cut -d" " -f4 /proc/$p/stat); echo $p; done > $HOME/ancestry.new'
        r = goal.run(f"if [ -e $HOME/ancestry ]; then echo again; else {ancestry}; mv $HOME/ancestry.new "
                     "$HOME/ancestry; sleep 300; fi", retries=1).sync()
        print("attempts", [a["status"] for a in r.attempts], r.read_stdout().strip())
    """)
    with started(cluster, tmp_path, "config.py") as proc:
        wait_for("the first attempt to run", lambda: (tmp_path / "ancestry").exists())
        launcher, guardian = [int(pid) for pid in (tmp_path / "ancestry").read_text().split()]
        os.kill(launcher if victim == "launcher" else guardian, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "attempts ['error', 'ok'] again" in out, out + err
    cut = [e for e in log_of(err) if e["event"] == "retrying"]
    # (the guardian's end is not srun's yet when its launcher reports the commands it stopped -- unless the
    # step's end came first: slurmstepd kills what is left of a step whose task died, the launcher with it, and
    # on a busy machine that SIGKILL can arrive before the launcher has told of its guardian's death)
    whys = ["killed by SIGKILL)"] if victim == "launcher" else ["its guardian process", "killed by SIGKILL)"]
    assert len(cut) == 1 and any(cut[0]["error"].startswith(f"the launcher on n1 died ({why}") for why in whys), cut
    wait_for("the allocation to be cancelled", lambda: not cluster.jobs())
