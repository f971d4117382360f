"""What parallux asks of Slurm's client commands, and how it reads their answers.

One ``sbatch`` per allocation, one ``squeue`` per poll of a pending allocation (never per command), one
``scontrol show hostnames`` to name its nodes, one ``srun`` per node (its launcher), one ``scancel`` at the
end -- each through the runner's shell (``_shell``: here, or a login host over SSH). Nothing here knows of
launchers or commands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import trio

from ..._errors import ConfigError
from ..._runner_options import SLURM
from ._shell import Missing, Shell

PILOT_GRACE = 30  # seconds the pilot script waits for a first launcher before it gives the allocation back
PILOT_QUIET = 8   # seconds in a row without a launcher on its node before it does (a relaunch takes ~2 s)

# The allocation's own script, on the first node: it holds the allocation while parallux's launchers (job
# steps) run on it, and ends -- giving the nodes back -- once none is left: at the end of the run, and as
# well after parallux was killed (SIGKILL), since its launchers then read EOF and end. It asks the node's
# slurmd, never the controller.
PILOT_SCRIPT = f"""#!/bin/sh
# parallux pilot: keeps this allocation while parallux's launchers run in it (see parallux's docs)
waited=0
quiet=0
while :; do
  if ! pids=$(scontrol listpids "$SLURM_JOB_ID" 2>/dev/null); then
    quiet=0  # slurmd did not answer: that is no proof the launchers are gone
  elif printf '%s\\n' "$pids" | awk 'NR > 1 && $3 ~ /^[0-9]+$/ {{found = 1}} END {{exit !found}}'; then
    quiet=0
    waited={PILOT_GRACE}
  else
    quiet=$((quiet + 1))
  fi
  if [ "$quiet" -ge {PILOT_QUIET} ] && [ "$waited" -ge {PILOT_GRACE} ]; then
    exit 0
  fi
  sleep 1
  waited=$((waited + 1))
done
"""

# sbatch's complaints, and the goal.slurm() option each one is about
COMPLAINTS = (("partition", "partition"), ("time", "time"), ("account", "account"), ("qos", "qos"),
              ("feature", "constraint"), ("constraint", "constraint"), ("processors", "nodes"),
              ("node count", "nodes"), ("nodes", "nodes"), ("memory", "sbatch_options"),
              ("generic resource", "gpus_per_node"), ("gres", "gpus_per_node"))
# sbatch's answer to a node no node of the partition can be (more CPUs or GPUs than any has): the options that
# shape a node, those the runner gave
NO_SUCH_NODE = "node configuration is not available"
NODE_SHAPE = ("cpus_per_node", "gpus_per_node")
ENDED = ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
         "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED")


@dataclass
class Request:
    """An allocation as goal.slurm() asks for it."""

    runner: str
    nodes: int | None
    partition: str | None = None
    time: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    cpus_per_node: int | None = None
    extra: Sequence[str] | None = ()
    gpus_per_node: int | None = None

    @classmethod
    def of(cls, runner: str, options: dict[str, Any]) -> Request:
        """The request of ``goal.slurm()``'s checked options (``SLURM.checked``): those kept for it."""
        return cls(runner, **{option.field: options[option.name] for option in SLURM.kept("request")})

    def sbatch_argv(self, test_only: bool = False) -> list[str]:
        argv = ["sbatch", "--parsable", "--no-requeue", f"--job-name=parallux:{self.runner}",
                f"--nodes={self.nodes or 1}", "--output=/dev/null"]
        for option in SLURM.flagged("sbatch"):  # (partition, time, ...: as sbatch spells them)
            value = getattr(self, option.field)
            if value is not None:
                argv.append(f"--{option.name}={value}")
        if self.cpus_per_node is None:
            argv.append("--exclusive")  # every CPU of each node: the slots and the core pool are the node's
        else:
            argv += ["--ntasks-per-node=1", f"--cpus-per-task={self.cpus_per_node}"]
        if self.gpus_per_node is not None:
            argv.append(f"--gres=gpu:{self.gpus_per_node}")
        argv += list(self.extra or ())  # (sbatch_options=)
        return argv + (["--test-only"] if test_only else [])


def refused(stderr: str, request: Request) -> ConfigError:
    """sbatch's refusal as a ConfigError that names the option (or options) it is about."""
    lines = [line.removeprefix("sbatch: error: ").strip() for line in stderr.splitlines() if line.strip()]
    message = "; ".join(dict.fromkeys(lines)) or "no reason given"
    lower = message.lower()
    options = [next((option for word, option in COMPLAINTS if word in lower), None)]
    if NO_SUCH_NODE in lower:
        options = [option for option in NODE_SHAPE if getattr(request, option) is not None] or ["nodes"]
    about = f" (option{'s' if len(options) > 1 else ''} {', '.join(f'{o}=' for o in options)})" if options[0] else ""
    return ConfigError(f"goal.slurm({request.runner!r}){about}: sbatch refused the allocation: {message}")


def submit(shell: Shell, request: Request, test_only: bool = False) -> str:
    """Submit the pilot now (main thread, at goal.slurm()); its job id. ``test_only``: sbatch only checks."""
    try:
        done = shell.run_now(request.sbatch_argv(test_only), stdin=PILOT_SCRIPT)
    except Missing:
        raise ConfigError(f"goal.slurm({request.runner!r}): sbatch is not installed {shell.where}: a Slurm runner "
                          "needs Slurm's client commands (sbatch, srun, squeue, scancel)") from None
    except TimeoutError:
        raise ConfigError(f"goal.slurm({request.runner!r}): sbatch did not answer within 60 s; is the Slurm "
                          "controller reachable?") from None
    if done.returncode != 0:
        raise refused(done.stderr, request)
    if test_only:
        return ""
    job_id = done.stdout.strip().split(";")[0]
    shell.watch(job_id)
    return job_id


async def submit_again(shell: Shell, request: Request) -> str:
    """A new pilot (engine thread), when the last allocation ended and work remains."""
    try:
        done = await shell.run(request.sbatch_argv(), stdin=PILOT_SCRIPT)
    except (Missing, OSError) as exc:
        raise ConfigError(f"goal.slurm({request.runner!r}): cannot run sbatch {shell.where}: {exc}") from None
    if done.returncode != 0:
        raise refused(done.stderr, request)
    job_id = done.stdout.strip().split(";")[0]
    shell.watch(job_id)
    return job_id


@dataclass
class JobState:
    state: str             # RUNNING, PENDING, ... or GONE (squeue no longer knows it)
    reason: str | None
    nodelist: str
    time_left: float | None  # seconds; None: unlimited or not known

    @property
    def ended(self) -> bool:
        return self.state in ENDED or self.state == "GONE" or self.state == "COMPLETING"


async def job_state(shell: Shell, job_id: str) -> JobState:
    """The job's state: GONE once squeue no longer knows it, UNKNOWN when squeue itself failed."""
    try:
        done = await shell.run(["squeue", "-h", "-j", job_id, "-o", "%T|%r|%N|%L"])
    except (Missing, OSError):
        return JobState("UNKNOWN", None, "", None)
    line = done.stdout.strip().splitlines()
    if done.returncode != 0 and "Invalid job id" not in done.stderr:
        return JobState("UNKNOWN", None, "", None)
    if not line:
        return JobState("GONE", None, "", None)
    state, reason, nodelist, left = (line[0].split("|") + ["", "", ""])[:4]
    return JobState(state, None if reason in ("None", "") else reason, nodelist, duration(left))


def submitted_now(shell: Shell, job_id: str) -> tuple[str | None, str | None, float | None]:
    """A job just submitted: its state, pending reason and time limit (main thread)."""
    state, reason, limit = (_squeue_now(shell, job_id, "%T|%r|%l").split("|") + ["", "", ""])[:3]
    return state or None, None if reason in ("None", "") else reason, duration(limit)


def time_left_now(shell: Shell, job_id: str) -> float | None:
    return duration(_squeue_now(shell, job_id, "%L"))


def _squeue_now(shell: Shell, job_id: str, field: str) -> str:
    try:
        return shell.run_now(["squeue", "-h", "-j", job_id, "-o", field]).stdout.strip()
    except (Missing, TimeoutError, OSError):
        return ""


async def hostnames(shell: Shell, nodelist: str) -> list[str]:
    try:
        return (await shell.run(["scontrol", "show", "hostnames", nodelist])).stdout.split()
    except (Missing, OSError):
        return []


def hostnames_now(shell: Shell, nodelist: str) -> list[str]:
    done = shell.run_now(["scontrol", "show", "hostnames", nodelist])
    if done.returncode != 0:
        raise ConfigError(f"goal.slurm(): cannot name the nodes of this allocation ({nodelist!r}): "
                          f"{done.stderr.strip()}")
    return done.stdout.split()


async def cancel(shell: Shell, job_id: str) -> None:
    with trio.move_on_after(30):
        try:
            await shell.run(["scancel", job_id])
        except (Missing, OSError):
            pass


def cancel_now(shell: Shell, job_id: str) -> None:
    try:
        shell.run_now(["scancel", job_id], timeout=30)
    except (Missing, TimeoutError, OSError):
        pass


def srun_argv(job_id: str, node: str, boot: list[str], gpus: int | None = None) -> list[str]:
    """The step that runs one node's launcher: all the job's CPUs on that node (``--whole``), beside the
    other steps (``--overlap``), its stdin and stdout the protocol's stream, unbuffered (file transfers send
    binary frames that end with no newline). ``gpus``: the GPUs asked of each node; the step asks for as
    many, said rather than left to Slurm's default (``--whole`` is about CPUs only, and a whole-node job
    holds every GPU of its nodes, more than were asked)."""
    asked = [f"--gres=gpu:{gpus}"] if gpus is not None else []
    return ["srun", f"--jobid={job_id}", "--nodes=1", "--ntasks=1", f"--nodelist={node}", "--overlap",
            "--whole", *asked, "--unbuffered", "--quiet", "--job-name=parallux-launcher", "--kill-on-bad-exit=0",
            *boot]


def duration(text: str) -> float | None:
    """Slurm's ``[days-]hours:minutes:seconds`` (and shorter forms) in seconds; None for UNLIMITED and the like."""
    text = text.strip()
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not match:
        return None
    days, a, b, c = (int(g) if g is not None else None for g in match.groups())
    if days is not None:  # days-hours[:minutes[:seconds]]
        return days * 86400 + (a or 0) * 3600 + (b or 0) * 60 + (c or 0)
    if b is None:         # minutes
        return (a or 0) * 60
    if c is None:         # minutes:seconds
        return (a or 0) * 60 + b
    return (a or 0) * 3600 + b * 60 + c  # hours:minutes:seconds
