"""Slurm runners: a pilot allocation, and one launcher on each of its nodes, reached through ``srun``.

``goal.slurm(...)`` submits one allocation (``sbatch``, at once: a refusal is the config's error) whose own
script only holds it (``_commands.PILOT_SCRIPT``); inside an allocation (``SLURM_JOB_ID``) with
``nodes=None`` it uses that one. Each node is a seat of its own, on a :class:`SlurmTransport`: once the
allocation runs, ``srun --jobid J -w NODE --overlap --whole`` starts the launcher there, and its stdin and
stdout are the protocol's stream, as a local launcher's pipes are. No Slurm job per command, no ``sacct``.

The launcher's life is the step's: EOF on srun's stdin (the end of the run, or parallux killed) ends it,
and the pilot script gives the allocation back once no launcher is left; an allocation that ends under it
(time limit, node failure, ``scancel``) ends the step, the commands it ran end ``error``, and the node's
seat asks for the next allocation (``_allocation``) while work remains. srun itself is never signalled:
SIGTERM to srun kills the step before the launcher can write its records.
"""

from __future__ import annotations

import os
import shlex
import sys
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import trio

from ..._errors import RunnerError
from .._base import Pipe, Transport, ended_how
from .._boot import boot_argv
from . import _commands as slurm
from ._allocation import Allocation, Closed
from ._node import NodeRelaunch
from ._shell import LocalShell, Shell, Spawned

DRY_RUN = "(dry run)"  # a dry run's job id: nothing was submitted
HELLO = {"sigterm": "error"}  # SIGTERM from outside is the allocation ending: its commands end "error"


class SlurmTransport(Transport):
    """Node ``index`` of an allocation: its launcher, started by srun. The seat of the node holds the
    allocation (its ``Batch``) and ``relaunch``."""

    kind = "slurm"

    def __init__(self, allocation: Allocation, index: int, python: str = "python3") -> None:
        self.allocation = allocation
        self.index = index
        self.python = python
        self.node: str | None = allocation.node_names[index] if allocation.node_names else None
        self.login = srun_login(allocation.request, self.node)
        self._generation: int | None = None
        self._srun: Spawned | None = None  # the current launcher's srun
        self.relaunch = NodeRelaunch(allocation, self._srun_said)  # (for _pool to give the node's seat)

    def describe(self, name: str) -> str:
        where = f"node {self.node}" if self.node else f"node {self.index + 1} of {self.allocation.request.nodes}"
        return f"slurm runner {name!r} ({where}, job {self.allocation.job_id})"

    def plan_facts(self, root: str | None = None) -> dict[str, Any]:
        """A dry run's node: the CPUs and GPUs asked of it (a step's GPUs as Slurm numbers them, from 0)."""
        request = self.allocation.request
        cpus, gpus = request.cpus_per_node, request.gpus_per_node
        return {"logical_cores": cpus, "usable_cores": cpus, "home": "~", "cwd": "", "numactl": "numactl",
                "hostname": self.node or f"{request.runner}-node{self.index + 1}",
                **({"gpus": [{"index": index, "numa_node": None} for index in range(gpus)]} if gpus else {})}

    def _lost_reason(self) -> str | None:
        """The allocation's end, if it ended; else None for a launcher that died (the seat says so, with
        ``Pipe.death``); else that its step ended, and what srun said."""
        said = "; ".join(line for line in self._srun_said() if "error" in line.lower())
        allocation_ended = self.allocation.generation == self._generation and self.allocation.ended_how
        if not allocation_ended and self._death() is not None:
            return None
        ended = self.allocation.ended_how if allocation_ended else "the launcher's Slurm step ended"
        return ended + (f" (srun: {said})" if said else "")

    def _death(self) -> str | None:
        """srun ends with the step's task, the launcher's guardian: 128 + N when it or its launcher was
        killed by signal N. Any other status is srun's own (its stderr then says more: ``_lost_reason``)."""
        code = self._srun.returncode() if self._srun is not None else None
        return ended_how(code) if code is not None and (code < 0 or code > 128) else None

    @asynccontextmanager
    async def open(self, name: str) -> AsyncIterator[Pipe]:
        """Wait for the allocation (a new one if the last ended), then srun the launcher on this node."""
        try:
            self._generation, self.node = await self.allocation.node(self.index, self._generation)
            self.login = srun_login(self.allocation.request, self.node)
        except Closed:
            relaunch = self.relaunch
            relaunch.given_up = relaunch.given_up or self.allocation.failure or "the run is ending"
            raise RunnerError(f"{self.describe(name)}: {relaunch.given_up}") from None
        self._srun, self.relaunch.hello_seen = None, False
        try:
            argv = slurm.srun_argv(self.allocation.job_id, self.node, boot_argv(self.python),
                                   self.allocation.request.gpus_per_node)
            try:
                async with self.allocation.shell.spawn(argv) as spawned:
                    self._srun = spawned
                    yield Pipe(*spawned.streams, hello=HELLO, host=self.node,
                               variables={"PARALLUX_NODE": self.node} if self.node else {},
                               death=self._death, lost_reason=self._lost_reason, said_hello=self._ready)
            except OSError as exc:
                if self._srun is not None:
                    raise
                raise RunnerError(f"{self.describe(name)}: cannot start srun {self.allocation.shell.where}: "
                                  f"{exc}") from exc
        finally:
            with trio.CancelScope(shield=True):
                await self.allocation.left(self.index)

    def _srun_said(self) -> list[str]:
        return self._srun.stderr_lines() if self._srun is not None else []

    def _ready(self) -> None:
        self.relaunch.hello_seen = True

    async def close(self) -> None:
        await self.allocation.close()


def allocate(request: slurm.Request, *, dry_run: bool, shell: Shell | None = None) -> Allocation:
    """The allocation a ``goal.slurm()`` runner lives in: the one parallux runs inside (``SLURM_JOB_ID``,
    ``nodes=None``), or a new one, submitted now -- in a dry run only checked (``sbatch --test-only``).
    ``shell``: a login host's (``login=``); then the allocation parallux runs in, if any, is not the
    cluster's, and a dry run asks nothing (it opens no connection)."""
    inside = os.environ.get("SLURM_JOB_ID") if shell is None else None
    shell = shell or LocalShell()
    if request.nodes is None and inside:
        names = slurm.hostnames_now(shell, os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST", ""))
        left = slurm.time_left_now(shell, inside)  # (what is left of it is all a command can have)
        allocation = Allocation(request, shell, job_id=inside, own=False, nodes=names, time_limit=left)
        allocation.start_clock(left)
        return allocation
    if inside:
        print(f"parallux: note: goal.slurm({request.runner!r}, nodes={request.nodes}) runs inside job {inside} "
              "and submits an allocation of its own; leave nodes= out to use this job's nodes", file=sys.stderr)
    limit = slurm.duration(request.time) if request.time else None
    if dry_run:
        if isinstance(shell, LocalShell):
            slurm.submit(shell, request, test_only=True)
        return Allocation(request, shell, job_id=DRY_RUN, own=False, time_limit=limit)
    job_id = slurm.submit(shell, request)
    state, reason, time_limit = slurm.submitted_now(shell, job_id)
    allocation = Allocation(request, shell, job_id=job_id, own=True, time_limit=time_limit or limit)
    allocation.state, allocation.reason = state or allocation.state, reason
    return allocation


def plan_line(allocation: Allocation) -> str:
    """A dry run's line for the runner's allocation: the sbatch command that would submit it, or the
    allocation it would run in."""
    request = allocation.request
    if allocation.job_id != DRY_RUN:
        return f"slurm runner {request.runner!r}: job {allocation.job_id} (this allocation: nothing submitted)"
    checked = "checked by sbatch --test-only" if isinstance(allocation.shell, LocalShell) else "not checked"
    return f"slurm runner {request.runner!r}: {shlex.join(request.sbatch_argv())}  ({checked}; not submitted)"


def srun_login(request: slurm.Request, node: str | None) -> tuple[str, ...]:
    """A one-task job on the node, for a user to run a shell command there (the allocation may be long gone
    by the time it is typed)."""
    options = [f"--{key}={value}" for key, value in (("partition", request.partition), ("account", request.account))
               if value is not None]
    return ("srun", "--nodes=1", "--ntasks=1", *options, *([f"--nodelist={node}"] if node else []), "sh", "-c")
