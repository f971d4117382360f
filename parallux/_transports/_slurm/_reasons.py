"""Pending reasons that can never clear: a pilot that waits for one would wait for ever.

Slurm names why a job still waits (squeue's reason, see "JOB REASON CODES" in squeue(1)). Most reasons
clear by themselves (``Resources``, ``Priority``, ``AssocGrp*`` aggregate limits that other jobs' ends
free); the ones below do not: the request exceeds a fixed limit of its partition, account or QOS, names
something invalid, or needs nodes that are down or drained -- only an administrator's change (or a new
request) ends them. Many sites keep ``EnforcePartLimits=NO`` (Slurm's default), where a request beyond a
partition's limits is accepted and pends with such a reason instead of being refused by sbatch.
"""

from __future__ import annotations

import re

from ._shell import Missing, Shell

# reason -> what it means for the request, and the option of goal.slurm() to look at
NEVER = {
    "PartitionTimeLimit": "its time limit is longer than the partition's (option time=)",
    "PartitionNodeLimit": "its node count is outside the partition's limits, or nodes it needs are down or "
                          "drained (option nodes=)",
    "BadConstraints": "its constraints cannot be met by any node (option constraint=)",
    "InvalidAccount": "its account is not valid (option account=)",
    "InvalidQOS": "its QOS is not valid (option qos=)",
    "AccountNotAllowed": "its account may not use the partition (options account=, partition=)",
    "QOSNotAllowed": "its QOS may not use the partition (options qos=, partition=)",
    "DependencyNeverSatisfied": "it depends on a job that will never end as it requires (sbatch_options=)",
}
# a per-job maximum (or minimum) of its account or QOS: AssocMaxWallDurationPerJobLimit, QOSMaxNodePerJobLimit,
# QOSMinCpuNotSatisfied, ...; not the aggregate Grp* limits, which other jobs' ends free
PER_JOB = re.compile(r"(?:Assoc|QOS)Max\w*PerJob\w*|QOSMin\w+")
# What Slurm says first of a request beyond its partition (before its scheduler names the limit), and of one
# no partition's nodes can ever hold (``nodes=`` above the partition's node count): failing on it waits a
# little, so that the precise reason, if one comes, is the one given.
PARTITION_CONFIG = "PartitionConfig"
PARTITION_CONFIG_GRACE = 4.0  # seconds
DEAD_NODE_STATES = ("down", "drain", "fail", "inval")  # sinfo's states (drained, draining, down*, failing...)


async def never_starts(shell: Shell, job_id: str, reason: str, for_seconds: float) -> str | None:
    """Why the pending job can never start, if its ``reason`` (squeue's, held ``for_seconds`` so far) says
    so: ``PartitionTimeLimit: its time limit ...``; None for a reason that may clear."""
    code, _, detail = reason.partition(",")
    code = code.strip()
    if code in NEVER:
        return f"{code}: {NEVER[code]}"
    if PER_JOB.fullmatch(code):
        return f"{code}: it asks for more than a per-job limit of its account or QOS allows"
    if code == PARTITION_CONFIG and for_seconds >= PARTITION_CONFIG_GRACE:
        return (f"{code}: it asks for more than its partition has (options nodes=, cpus_per_node=, partition=, "
                "sbatch_options=)")
    if code == "ReqNodeNotAvail":
        return await _nodes_gone(shell, detail)
    if code == "AssocMaxJobsLimit":
        return await _no_job_may_run(shell, job_id)
    return None


async def _nodes_gone(shell: Shell, detail: str) -> str | None:
    """``ReqNodeNotAvail, UnavailableNodes:n[2-3]``: never, when every node named is down or drained (not
    merely busy, reserved or slow to answer)."""
    match = re.search(r"UnavailableNodes:(\S+)", detail)
    if not match:
        return None
    try:
        done = await shell.run(["sinfo", "-h", "-N", "-n", match.group(1), "-o", "%N|%T"])
    except (Missing, OSError):
        return None
    states = dict(line.split("|", 1) for line in done.stdout.split() if "|" in line)
    if done.returncode != 0 or not states:
        return None
    if not all(state.startswith(DEAD_NODE_STATES) for state in states.values()):
        return None
    named = ", ".join(f"{node} {state}" for node, state in sorted(states.items()))
    return f"ReqNodeNotAvail: nodes it requires are down or drained ({named})"


async def _no_job_may_run(shell: Shell, job_id: str) -> str | None:
    """``AssocMaxJobsLimit``: the account's limit on jobs running at once is reached. It clears when another
    of the user's jobs ends; with none running, the limit lets none run, ever."""
    try:
        done = await shell.run(["squeue", "-h", "--me", "-t", "RUNNING,COMPLETING,CONFIGURING,SUSPENDED",
                                "-o", "%i"])
    except (Missing, OSError):
        return None
    if done.returncode != 0 or set(done.stdout.split()) - {job_id}:
        return None
    return ("AssocMaxJobsLimit: its account's limit on jobs running at once lets none run (no other job of "
            "yours runs)")
