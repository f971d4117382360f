"""What a command needs before it starts, and what a machine offers: one model of cores, GPUs and memory.

A command's :class:`Request` (``threads``/``numa_node``/``cores``, ``gpus=``, ``memory=``) is met by a seat's
:class:`Offer` (its core pool, the GPUs its launcher reported in its hello, the memory of its machine): one
allocator per seat (``_allocator.ResourceAllocator``), deciding under its machine's lock, leases all of a
request at once -- or nothing -- as a :class:`Lease`, which goes back whatever way the command ends. The
offer comes from the hello (``offer_of``): whatever GPUs the launcher says its commands may use are the pool,
detected (``nvidia-smi``), given (the runner's ``gpus=``) or, in a batch step, the step's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ._cores import Lease as CoreLease
from ._cores import format_cores
from ._gpus import gpu_variables

CORES, GPUS, MEMORY = 1, 2, 4  # what a lease takes on a machine (a bit mask: see ResourceAllocator.needs)
MEMORY_HEADROOM = 0.9  # a machine's memory pool without memory_pool=: its MemTotal less 10%


@dataclass(frozen=True)
class Request:
    """Everything a command asks of its machine before it may start."""

    threads: int = 1
    numa_node: int | None = None
    cores: tuple[int, ...] | None = None  # exactly these
    gpus: int | tuple[int, ...] | None = None  # a count, or exactly these indices
    memory: int | None = None  # bytes reserved on its machine while it runs


def request_of(command: Any) -> Request:
    """A queued command's request (``_handles.Command``, or a scheduler test's)."""
    return Request(command.threads, command.requested_numa_node, command.requested_cores,
                   command.requested_gpus, command.memory)


@dataclass(frozen=True)
class Offer:
    """What a seat's launcher said its machine offers beside the core pool (``None``: not known yet)."""

    gpus: tuple[int, ...] | None = None  # the GPU indices its commands may lease
    gpu_nodes: Mapping[int, int] = field(default_factory=dict)  # GPU -> its NUMA node, where the machine says
    node_cpus: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # the machine's NUMA nodes' CPUs
    memory: int | None = None  # bytes its commands may reserve: memory_pool=, else MemTotal less 10%
    memory_given: bool = False  # memory is the runner's memory_pool=
    gpu_error: str | None = None  # why detecting its GPUs failed (nvidia-smi's words)


NO_OFFER = Offer()


def offer_of(facts: Mapping[str, Any], gpus: tuple[int, ...] | None, memory_pool: int | None) -> Offer:
    """A seat's offer from its launcher's hello. ``gpus``, the runner's option, stands where the hello says
    nothing of GPUs (a dry run's plan launcher); ``memory_pool`` overrides the machine's memory."""
    reported = facts.get("gpus")
    if isinstance(reported, list):
        offered: tuple[int, ...] | None = tuple(sorted(int(gpu["index"]) for gpu in reported))
        nodes = {int(gpu["index"]): int(gpu["numa_node"]) for gpu in reported if gpu.get("numa_node") is not None}
    else:
        offered, nodes = gpus, {}
    total = facts.get("memory_total")
    memory = memory_pool if memory_pool is not None else \
        int(total * MEMORY_HEADROOM) if isinstance(total, int) and total > 0 else None
    node_cpus = {int(node): tuple(cpus) for node, cpus in (facts.get("numa_cpus") or {}).items()}
    return Offer(offered, nodes, node_cpus, memory, memory_pool is not None, facts.get("gpu_error"))


@dataclass(frozen=True, eq=False)
class Lease:
    """All that one command holds until it ends: its cores (with a core pool), its GPUs, its memory reserved.

    Leases compare by identity, as core leases do: the allocator tells a stale double release from the
    current holder's."""

    core_lease: CoreLease | None = None
    gpus: tuple[int, ...] = ()
    memory: int = 0

    @property
    def cores(self) -> tuple[int, ...]:
        return self.core_lease.cores if self.core_lease is not None else ()

    @property
    def numa_node(self) -> int | None:
        return self.core_lease.numa_node if self.core_lease is not None else None

    def variables(self) -> dict[str, str]:
        """What its command is told of it: ``PARALLUX_CORES`` (and ``PARALLUX_NUMA_NODE``), its GPUs."""
        told = {}
        if self.core_lease is not None:
            told["PARALLUX_CORES"] = format_cores(self.core_lease.cores)
            if self.core_lease.numa_node is not None:
                told["PARALLUX_NUMA_NODE"] = str(self.core_lease.numa_node)
        if self.gpus:
            told.update(gpu_variables(self.gpus))
        return told
