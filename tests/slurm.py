"""A throwaway, self-contained Slurm cluster of three nodes on this one machine, for tests.

Nothing here touches the machine's own Slurm or munge (``/etc/slurm``, ``/etc/munge``, their services):
everything lives in one temp directory -- a munge key and socket for a private ``munged``, a ``slurm.conf``
with its own ports, state, spool, pid and log files, an empty ``plugstack.conf`` -- and the client commands
(``sbatch``, ``srun``, ``squeue``, ``scancel``, ``scontrol``, ``sinfo``) find that cluster only through
``SLURM_CONF`` in :attr:`SlurmCluster.env`, which the caller passes to every subprocess. That env also sets
``SBATCH_OUTPUT`` to ``<tmpdir>/out/slurm-%j.out``: a batch job submitted without ``--output`` writes there,
not into the test's cwd (an explicit ``--output`` still wins).

The daemons: ``munged -F`` (Slurm is pointed at its socket by ``AuthInfo=socket=...``), ``slurmctld -D -c``
and one ``slurmd -D -N nK`` per node. Debian's slurmd accepts ``-N``, so several slurmds share one host: each
node has its own ``NodeName`` line with its own ``Port``, and ``%n`` in ``SlurmdPidFile``/``SlurmdSpoolDir``/
``SlurmdLogFile`` keeps their files apart. Every node declares the real topology of this machine (from
``slurmd -C``), so on a 2-core machine the cluster has 3 nodes of 2 CPUs, all of them the same two cores.

GPUs: ``slurm_cluster``'s nodes declare 4 GPUs each as generic resources (``GresTypes=gpu``, ``Gres=gpu:4``,
a ``gres.conf`` whose ``File=`` are fake device nodes in the temp dir: see ``_write_gres``). A step given
GPUs (``srun --gres=gpu:2``) sees ``SLURM_STEP_GPUS``, ``CUDA_VISIBLE_DEVICES``, ``GPU_DEVICE_ORDINAL`` and
``ROCR_VISIBLE_DEVICES`` naming them (``0,1``), and ``SLURM_GPUS_ON_NODE`` (``2``); a step without GPUs
sees none of them (an inherited ``CUDA_VISIBLE_DEVICES`` is removed). No real GPU is involved.

Usage::

    from tests.slurm import start_slurm
    cluster = start_slurm(tmp_path)
    subprocess.run(["srun", "-N3", "hostname"], env=cluster.env)
    cluster.stop()

or the session-scoped pytest fixture ``slurm_cluster`` (imported into ``tests/conftest.py``), which skips
the test when the Slurm or munge binaries are missing (``./scripts/setup`` installs them). A second one,
``slurm_lenient``, is another cluster whose partition limits are as Slurm's default (``EnforcePartLimits=NO``:
a request beyond them pends instead of being refused), with a partition ``tiny`` (n3, ``MaxTime=1``).

Process lifetime: each daemon runs in a session of its own (no signal it sends reaches pytest), with
``PR_SET_PDEATHSIG`` so that a SIGKILLed pytest does not leave it running. ``stop()`` cancels every job,
waits for the queue to empty, stops the daemons by the pids it started (SIGTERM, a bounded wait, SIGKILL),
then looks through ``/proc`` for anything still carrying this cluster's mark -- the ``PARALLUX_TEST_SLURM``
variable that the daemons and, through :attr:`SlurmCluster.env`, every client command and job inherit, or
the temp dir on its command line -- and kills those by pid; it returns what it had to kill.

Timing, measured on this fixture (2 cores): the nodes are idle ~0.5-2 s after start; a step (``srun``) starts
in ~0.1 s; a batch job waits for the controller's next scheduling pass (up to ~1 s; ~3 s for the very first
job after start). A time limit is whole minutes (``-t 0:05`` means 1 minute) and slurmctld checks limits every
30 s, so a job with ``-t 1`` ends 60-90 s after it started. A killed slurmd is noticed (node DOWN, its jobs
NODE_FAIL / requeued) ~25 s later (``SlurmdTimeout=30``).

Network: the controller and every node are addressed as 127.0.0.1, but Slurm has no option to bind its
daemons to one address: slurmctld, the slurmds and srun listen on all interfaces (on ports chosen here).
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

SBIN = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")
DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "slurmstepd")
CLIENTS = ("munge", "sbatch", "srun", "salloc", "squeue", "scancel", "scontrol", "sinfo")
MARK_VAR = "PARALLUX_TEST_SLURM"
NODE_COUNT = 3
GPUS_PER_NODE = 4  # slurm_cluster's nodes' (fake) GPUs
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes with the NUL
PR_SET_PDEATHSIG = 1

__all__ = [
    "SlurmCluster",
    "SlurmStartError",
    "missing_binaries",
    "start_slurm",
    "slurm_cluster",
    "slurm_lenient",
]


class SlurmStartError(RuntimeError):
    """The test cluster could not be configured or started."""


def _find(name: str) -> str | None:
    for d in SBIN:
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name)


def missing_binaries() -> list[str]:
    """The Slurm and munge programs this fixture needs that are not installed."""
    return [name for name in DAEMONS + CLIENTS if _find(name) is None]


@dataclasses.dataclass
class SlurmCluster:
    tmpdir: Path
    conf: Path  # slurm.conf; SLURM_CONF in env points at it
    env: dict[str, str]  # for client commands: SLURM_CONF, the mark, SBATCH_OUTPUT, no inherited SLURM_*
    nodes: list[str]  # n1, n2, n3
    cpus_per_node: int
    gpus_per_node: int  # GPUs each node declares (Gres=gpu:N); 0: none
    gpu_devices: bool  # whether they are device files Slurm accepts: only then does it name them to steps
    real_memory_mb: int
    partition: str  # the default partition: every node
    short_partition: str  # n1 only, MaxTime=5 (minutes), limits enforced at submission
    cluster_name: str
    ctld_port: int
    node_ports: dict[str, int]
    munge_socket: Path
    procs: dict[str, subprocess.Popen] = dataclasses.field(default_factory=dict, repr=False)

    # -- running client commands ------------------------------------------------------------------------

    def run(self, *argv: str, check: bool = True, timeout: float = 30.0,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run a client command (``cluster.run("sbatch", "--wrap", "true")``) against this cluster."""
        r = subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=timeout,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed (rc={r.returncode}):\n{r.stdout}{r.stderr}")
        return r

    def jobs(self) -> list[tuple[str, str, str]]:
        """(job id, state, reason) of every job squeue lists (pending, running, completing...)."""
        out = self.run("squeue", "-h", "-o", "%i|%T|%r").stdout
        return [tuple(line.split("|", 2)) for line in out.splitlines() if line.strip()]  # type: ignore[misc]

    def node_states(self) -> dict[str, str]:
        """Each node's state as sinfo reports it: idle, mixed, allocated, down*, ..."""
        out = self.run("sinfo", "-h", "-N", "-p", self.partition, "-o", "%N %T").stdout
        return dict(line.split() for line in out.splitlines() if line.strip())

    def wait_idle(self, timeout: float = START_TIMEOUT) -> None:
        """Return once no job is queued and every node is idle (the state a test should start from)."""
        deadline = time.monotonic() + timeout
        while True:
            jobs, states = self.jobs(), self.node_states()
            if not jobs and len(states) == len(self.nodes) and set(states.values()) == {"idle"}:
                return
            if time.monotonic() > deadline:
                raise SlurmStartError(f"cluster not idle after {timeout:.0f} s: jobs {jobs}, nodes {states}\n"
                                      + self.log_tails())
            self._check_alive()
            time.sleep(0.1)

    def cancel_all(self, timeout: float = STOP_TIMEOUT + 10) -> None:
        """Cancel every job of this (private) cluster, and wait until squeue lists none."""
        deadline = time.monotonic() + timeout
        while True:
            ids = [job_id for job_id, _, _ in self.jobs()]
            if not ids:
                return
            self.run("scancel", "--full", *ids, check=False)
            if time.monotonic() > deadline:
                raise SlurmStartError(f"jobs still listed {timeout:.0f} s after scancel: {self.jobs()}")
            time.sleep(0.2)

    # -- nodes --------------------------------------------------------------------------------------------

    def stop_node(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop one slurmd (its jobs' slurmstepds live on, as when a real node's daemon dies)."""
        proc = self.procs.pop(f"slurmd.{name}")
        _stop_procs([proc], sig)

    def start_node(self, name: str) -> None:
        """Start a node's slurmd again (after stop_node) and wait until the controller sees it up."""
        self.procs[f"slurmd.{name}"] = _spawn(self, f"slurmd.{name}",
                                              [_find("slurmd"), "-D", "-N", name, "-f", str(self.conf)])
        deadline = time.monotonic() + START_TIMEOUT
        while self.node_states().get(name, "").rstrip("*~#!%$@^-") not in ("idle", "mixed", "allocated"):
            self._check_alive()
            if time.monotonic() > deadline:
                raise SlurmStartError(f"node {name} not up within {START_TIMEOUT:.0f} s\n" + self.log_tails())
            time.sleep(0.1)

    # -- lifetime -----------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs.values())

    def log_tails(self, lines: int = 15) -> str:
        parts = []
        for path in sorted(self.tmpdir.glob("log/*")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            if text:
                parts.append(f"--- {path} (last {len(text)} lines):\n" + "\n".join(text))
        return "\n".join(parts)

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise SlurmStartError(f"{name} (pid {proc.pid}) exited with status {proc.returncode}\n"
                                      + self.log_tails())

    def processes(self) -> list[str]:
        """Every process still carrying this cluster's mark or temp dir: "pid command line" each."""
        return [f"{pid} {cmd}" for pid, cmd in _marked_processes(self)]

    def stop(self) -> list[str]:
        """Cancel every job, stop the daemons, kill anything of this cluster left; return what was left."""
        try:
            if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
                try:
                    self.cancel_all()
                except (SlurmStartError, AssertionError, subprocess.TimeoutExpired):
                    pass  # the daemons go anyway, and the sweep below kills what the jobs left
        finally:
            slurmds = [p for name, p in self.procs.items() if name.startswith("slurmd.")]
            _stop_procs(slurmds)
            for name in ("slurmctld", "munged"):
                if name in self.procs:
                    _stop_procs([self.procs[name]])
            self.procs.clear()
        left = _marked_processes(self)
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return [f"{pid} {cmd}" for pid, cmd in left]


# -- configuration ------------------------------------------------------------------------------------------

def _free_ports(count: int) -> list[int]:
    """Distinct free ports (bound together, so none is handed out twice)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _hardware() -> tuple[str, int]:
    """This machine's topology as slurmd sees it ("CPUs=2 Boards=1 ..."), and its memory in MB.

    A node declaring more CPUs or memory than slurmd finds is drained, so the config copies slurmd -C.
    """
    r = subprocess.run([_find("slurmd"), "-C"], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    first = r.stdout.splitlines()[0] if r.returncode == 0 and r.stdout else ""
    fields = dict(re.findall(r"(\w+)=(\S+)", first))
    memory = int(fields.get("RealMemory", "1024"))
    if "CPUs" not in fields:
        return f"CPUs={os.cpu_count() or 1}", memory
    keys = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
    return " ".join(f"{k}={fields[k]}" for k in keys if k in fields), memory


def _write_conf(d: Path, name: str, ctld_port: int, node_ports: dict[str, int], topology: str,
                memory: int, extra: str, gpus: int) -> Path:
    host = socket.gethostname()
    lines = [
        f"ClusterName={name}",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        # Bind every daemon and srun to the address the names resolve to (127.0.0.1 here), not to every
        # interface: the tests use loopback only.
        "CommunicationParameters=NoInAddrAny,NoCtldInAddrAny",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={d / 'munge' / 'munge.sock'}",
        f"StateSaveLocation={d / 'state'}",
        f"SlurmdSpoolDir={d / 'spool' / '%n'}",
        f"SlurmctldPidFile={d / 'run' / 'slurmctld.pid'}",
        f"SlurmdPidFile={d / 'run' / 'slurmd.%n.pid'}",
        f"SlurmctldLogFile={d / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={d / 'log' / 'slurmd.%n.log'}",
        f"PlugStackConfig={d / 'plugstack.conf'}",
        "MailProg=/bin/true",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/affinity",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0",
        "MpiDefault=none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "EnforcePartLimits=ALL",  # a request beyond a partition's limits fails at submission, not later
        "ReturnToService=2",  # a node whose slurmd comes back is usable again at once
        "SlurmdTimeout=30",
        "SlurmctldTimeout=30",
        "InactiveLimit=0",
        # time limit / scancel: SIGTERM to every process of the steps, SIGKILL 5 s later (default 30 s): room
        # for the launcher's own 2 s stop of its commands, as a site's KillWait gives it
        "KillWait=5",
        "MinJobAge=30",  # `scontrol show job` still knows a job 30 s after it ended
        "MaxJobCount=50000",
        "MaxArraySize=10001",  # bench/: arrays of up to 10,000 tasks
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        *(["GresTypes=gpu"] if gpus else []),
    ]
    gres = f" Gres=gpu:{gpus}" if gpus else ""
    for node, port in node_ports.items():
        lines.append(f"NodeName={node} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} {topology} "
                     f"RealMemory={memory}{gres} State=UNKNOWN")
    nodes = f"n[1-{len(node_ports)}]"
    lines.append(f"PartitionName=debug Nodes={nodes} Default=YES MaxTime=INFINITE State=UP")
    lines.append("PartitionName=short Nodes=n1 MaxTime=5 State=UP")
    if extra:
        lines.append(extra.rstrip("\n"))
    path = d / "slurm.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_gres(d: Path, nodes: list[str], gpus: int) -> bool:
    """gres.conf (beside slurm.conf, where Slurm looks for it) naming ``gpus`` fake GPUs per node, each a
    device file of its own under ``<tmpdir>/dev/<node>/``; whether they are character devices.

    Slurm 22.05 drops a GPU without ``File=`` ("Removing file-less GPU"), and the node, short of the GPUs its
    ``Gres=`` declares, is INVAL; a ``File=`` that is no character or block device is accepted, but then no
    step is told which GPUs it has (only ``SLURM_GPUS_ON_NODE``). So each fake GPU is a character device
    node -- /dev/null's numbers (1, 3): nothing opens it, and were anything to, it is harmless -- and plain
    files only where mknod is not allowed.
    """
    devices = True
    lines = []
    for node in nodes:
        (d / "dev" / node).mkdir(parents=True, exist_ok=True)
        for index in range(gpus):
            path = d / "dev" / node / f"nvidia{index}"
            try:
                os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
            except PermissionError:
                path.touch()
                devices = False
        lines.append(f"NodeName={node} Name=gpu File={d / 'dev' / node}/nvidia[0-{gpus - 1}]")
    (d / "gres.conf").write_text("\n".join(lines) + "\n")
    return devices


def _client_env(conf: Path, d: Path) -> dict[str, str]:
    # Inherited SLURM_* (pytest run inside a Slurm job) would point srun at that job of another cluster.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["SLURM_CONF"] = str(conf)
    env[MARK_VAR] = str(d)
    # A batch job without --output writes slurm-<id>.out into the submitting cwd -- the checkout, in tests.
    env["SBATCH_OUTPUT"] = str(d / "out" / "slurm-%j.out")
    return env


# -- processes ----------------------------------------------------------------------------------------------

_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: a SIGKILLed pytest must not leave the daemons running.
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _spawn(cluster: SlurmCluster, name: str, argv: list[str]) -> subprocess.Popen:
    log = cluster.tmpdir / "log" / f"{name}.out"
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=cluster.tmpdir, env=cluster.env,
            # Own session: no signal a daemon sends to its group can reach pytest.
            start_new_session=True, preexec_fn=_die_with_parent)


def _stop_procs(procs: list[subprocess.Popen], sig: int = signal.SIGTERM) -> None:
    """Signal them all, wait for all (bounded), SIGKILL whatever is left, reap."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    deadline = time.monotonic() + STOP_TIMEOUT
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(STOP_TIMEOUT)


def _marked_processes(cluster: SlurmCluster) -> list[tuple[int, str]]:
    mark = f"{MARK_VAR}={cluster.tmpdir}".encode()
    where = str(cluster.tmpdir).encode()
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:  # gone, or a kernel thread
            continue
        if mark in environ or where in cmdline:
            found.append((int(entry), cmdline.replace(b"\0", b" ").decode(errors="replace").strip()))
    return found


def _wait_for(cluster: SlurmCluster, what: str, ready, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        cluster._check_alive()
        if time.monotonic() > deadline:
            raise SlurmStartError(f"{what} not ready within {timeout:.0f} s\n" + cluster.log_tails())
        time.sleep(0.05)


def _quiet(argv: list[str], env: dict[str, str]) -> bool:
    try:
        r = subprocess.run(argv, env=env, capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


def _start_munged(cluster: SlurmCluster) -> None:
    m = cluster.tmpdir / "munge"
    key = m / "munge.key"
    r = subprocess.run([_find("mungekey"), "--create", f"--keyfile={key}"], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise SlurmStartError(f"mungekey failed (rc={r.returncode}):\n{r.stdout}{r.stderr}")
    # --force: munged refuses a socket below a directory not searchable by all, and pytest's temp dirs are
    # 0700; only root uses this socket (Slurm runs as root here), so the warning it logs instead is harmless.
    cluster.procs["munged"] = _spawn(cluster, "munged", [
        _find("munged"), "--foreground", "--force", f"--socket={cluster.munge_socket}", f"--key-file={key}",
        f"--pid-file={m / 'munged.pid'}", f"--log-file={cluster.tmpdir / 'log' / 'munged.log'}",
        f"--seed-file={m / 'munged.seed'}"])
    encode = f"{_find('munge')} -n -S {cluster.munge_socket} | {_find('unmunge')} -S {cluster.munge_socket}"
    _wait_for(cluster, "munged", lambda: cluster.munge_socket.exists()
              and _quiet(["sh", "-c", encode], cluster.env))


def _start_slurm_daemons(cluster: SlurmCluster) -> None:
    conf = str(cluster.conf)
    cluster.procs["slurmctld"] = _spawn(cluster, "slurmctld", [_find("slurmctld"), "-D", "-c", "-f", conf])
    _wait_for(cluster, "slurmctld", lambda: _quiet([_find("scontrol"), "ping"], cluster.env))
    for node in cluster.nodes:
        cluster.procs[f"slurmd.{node}"] = _spawn(cluster, f"slurmd.{node}",
                                                 [_find("slurmd"), "-D", "-N", node, "-f", conf])
    cluster.wait_idle()
    # Idle in sinfo is not yet proof that a step can start (munge credentials, slurmstepd, I/O back to
    # srun): run one on every node.
    n = str(len(cluster.nodes))
    r = cluster.run(_find("srun"), "-N", n, "-n", n, "true", check=False)
    if r.returncode != 0:
        raise SlurmStartError(f"srun -N{n} -n{n} true failed (rc={r.returncode}):\n{r.stdout}{r.stderr}\n"
                              + cluster.log_tails())


def start_slurm(tmpdir: os.PathLike | str, *, name: str = "plxtest", extra_config: str = "",
                gpus: int = 0) -> SlurmCluster:
    """Configure and start munged, slurmctld and three slurmds in tmpdir; return once all nodes are idle.

    ``extra_config`` is appended to slurm.conf verbatim (a later line wins for most keys). ``gpus``: each node
    declares that many GPUs as generic resources (``Gres=gpu:N``, fake devices: see ``_write_gres``).
    """
    missing = missing_binaries()
    if missing:
        raise SlurmStartError(f"not installed: {', '.join(missing)} (./scripts/setup installs Debian's "
                              "slurmctld slurmd slurm-client munge)")
    d = Path(tmpdir).resolve()
    for sub in ("munge", "state", "log", "run", "out", *(f"spool/n{i}" for i in range(1, NODE_COUNT + 1))):
        (d / sub).mkdir(parents=True, exist_ok=True)
    munge_socket = d / "munge" / "munge.sock"
    if len(str(munge_socket)) > SUN_PATH_MAX - 20:  # slurmstepd's sockets in the spool dir are longer
        raise SlurmStartError(f"temp dir path too long for Unix sockets: {d}")
    (d / "plugstack.conf").write_text("")  # not the machine's /etc/slurm/plugstack.conf
    ctld_port, *ports = _free_ports(NODE_COUNT + 1)
    node_ports = {f"n{i}": port for i, port in enumerate(ports, 1)}
    topology, memory_mb = _hardware()
    memory = max(1, memory_mb // NODE_COUNT)
    conf = _write_conf(d, name, ctld_port, node_ports, topology, memory, extra_config, gpus)
    gpu_devices = _write_gres(d, list(node_ports), gpus) if gpus else False
    cluster = SlurmCluster(
        tmpdir=d, conf=conf, env=_client_env(conf, d), nodes=list(node_ports),
        cpus_per_node=int(re.search(r"CPUs=(\d+)", topology).group(1)), real_memory_mb=memory,
        gpus_per_node=gpus, gpu_devices=gpu_devices,
        partition="debug", short_partition="short", cluster_name=name, ctld_port=ctld_port,
        node_ports=node_ports, munge_socket=munge_socket)
    try:
        _start_munged(cluster)
        _start_slurm_daemons(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


# A second cluster's slurm.conf additions, as many sites run: Slurm's default EnforcePartLimits=NO accepts a
# request beyond a partition's limits, which then pends for ever (PartitionTimeLimit, PartitionNodeLimit)
# instead of sbatch refusing it; and a partition of one node whose jobs may run a minute at most.
LENIENT_CONFIG = "EnforcePartLimits=NO\nPartitionName=tiny Nodes=n3 MaxTime=1 State=UP"


def unavailable() -> str | None:
    """Why the test Slurm cannot run here (None: it can)."""
    missing = missing_binaries()
    if missing:
        return f"Slurm is not installed (missing {', '.join(missing)}): run ./scripts/setup"
    if os.geteuid() != 0:
        return (f"the test Slurm runs its daemons as root (SlurmUser=root); running as "
                f"{pwd.getpwuid(os.geteuid()).pw_name}")
    return None


def skip_without_slurm() -> None:
    why = unavailable()
    if why is not None:
        pytest.skip(why)


@pytest.fixture(scope="session")
def slurm_lenient(tmp_path_factory):
    """Another three-node cluster whose partition limits are enforced as by default (EnforcePartLimits=NO),
    with a partition ``tiny`` (n3, MaxTime=1); only for the tests that need requests to pend beyond them."""
    skip_without_slurm()
    cluster = start_slurm(tmp_path_factory.mktemp("slurm-lenient"), name="plxlenient", extra_config=LENIENT_CONFIG)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running three-node Slurm cluster for the whole session (skips when Slurm is not installed); each
    node declares 4 GPUs (``Gres=gpu:4``)."""
    skip_without_slurm()
    cluster = start_slurm(tmp_path_factory.mktemp("slurm"), gpus=GPUS_PER_NODE)
    try:
        yield cluster
    finally:
        cluster.stop()
