"""The resource allocator: a seat's cores, GPUs and memory, leased together under its machine's lock.

One :class:`ResourceAllocator` per seat: it leases cores from the seat's pool (its ``_cores.CoreAllocator``),
GPUs from the seat's offer and memory from its machine's pool, all of a request or nothing, every decision
made and applied under the lock of the machine the seat's launcher runs on (``_cpus.MachineCpus``), shared
with the allocators of the other seats there: a GPU goes to one command at a time whatever the runner, and
the memory reserved there never exceeds the machine's pool. A GPU's NUMA node, where the machine says, is
where the cores of a command leasing it come from.

A command that asks nothing of a seat without a core pool -- the common case, a million times in a big
campaign -- never reaches it: ``needs`` is 0 and the seat skips the lock (``_engine._seat``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Iterator

from . import _gpus
from ._cores import CoreAllocator
from ._cpus import MachineCpus
from ._errors import ConfigError
from ._resources import CORES, GPUS, MEMORY, NO_OFFER, Lease, Offer, Request
from ._sizes import format_size

Choice = tuple[tuple[int, ...], "tuple[int, ...] | None"]  # (GPUs, cores chosen)


class ResourceAllocator:
    """Leases all of a request at once, or nothing; safe to call from any thread."""

    def __init__(self, cores: CoreAllocator | None = None, offer: Offer = NO_OFFER) -> None:
        self.cores = cores
        self.offer = offer  # (set again at each hello: ``Seat.configure``)
        self.machine = cores.machine if cores is not None else MachineCpus()  # its own, until attached
        self._active: dict[Lease, MachineCpus] = {}

    def attach(self, machine: MachineCpus, siblings: Sequence[Sequence[int]] | None = None) -> None:
        """Lease from now on from ``machine``, with the other seats there (see ``CoreAllocator.attach``)."""
        if self.cores is not None:
            self.cores.attach(machine, siblings)
        self.machine = machine

    def needs(self, command: Any) -> int:
        """What a command takes here, as a mask of CORES, GPUS and MEMORY (0: no lease at all)."""
        return (CORES if self.cores is not None else 0) | (GPUS if command.requested_gpus is not None else 0) | \
            (MEMORY if command.memory is not None else 0)

    def competes(self, other: ResourceAllocator, kinds: int) -> bool:
        """Whether a lease here taking ``kinds`` may take what a lease of ``other`` would (one machine)."""
        if self.machine is not other.machine or not kinds:
            return False
        if kinds & (GPUS | MEMORY):
            return True
        return self.cores is not None and other.cores is not None and self.cores.overlaps(other.cores)

    # -- checks -------------------------------------------------------------------------------------------

    def check(self, request: Request) -> None:
        """Raise ConfigError if this request could never be granted here, even with nothing running."""
        if self.cores is not None:
            self.cores.check_request(request.threads, request.numa_node, request.cores)
        if request.gpus is not None:
            self._check_gpus(request.gpus)
        if request.memory is not None:
            self._check_memory(request.memory)

    def _check_gpus(self, wanted: int | tuple[int, ...]) -> None:
        offered = self.offer.gpus
        if offered is None:  # not known yet (a dry run, a pending allocation): its launcher's hello will say
            return
        why = f" (detecting them failed: {self.offer.gpu_error})" if self.offer.gpu_error else ""
        if isinstance(wanted, int) and wanted > len(offered):
            raise ConfigError(f"gpus={wanted} is more than the {len(offered)} GPU{'' if len(offered) == 1 else 's'} "
                              f"it offers ({_gpus.format_gpus(offered) or 'none'}){why}")
        missing = [gpu for gpu in wanted if gpu not in offered] if isinstance(wanted, tuple) else []
        if missing:
            raise ConfigError(f"gpus={list(wanted)}: GPU {_gpus.format_gpus(missing)} is not one it offers "
                              f"({_gpus.format_gpus(offered) or 'none'}){why}")

    def _check_memory(self, memory: int) -> None:
        pool = self.machine.memory if self.machine.memory is not None else self.offer.memory
        if pool is not None and memory > pool:
            source = "its memory_pool" if self.offer.memory_given else "its machine's memory less 10%"
            raise ConfigError(f"memory={format_size(memory)} is more than the {format_size(pool)} its machine "
                              f"offers ({source}): it could never start")

    # -- leases -------------------------------------------------------------------------------------------

    def could_fit_now(self, request: Request) -> bool:
        """Whether :meth:`try_lease` would succeed right now (a snapshot). Raises ConfigError like it."""
        self.check(request)
        with self.machine.lock:
            return self._decide(request) is not None

    def try_lease(self, request: Request) -> Lease | None:
        """Lease all of ``request`` now, or nothing (None: not all of it is free at the moment)."""
        self.check(request)
        machine = self.machine
        with machine.lock:
            decided = self._decide(request)
            if decided is None:
                return None
            gpus, chosen = decided
            core_lease = self.cores.grant(chosen) if self.cores is not None and chosen is not None else None
            machine.gpus.update(gpus)
            memory = request.memory or 0
            machine.reserved += memory
            lease = Lease(core_lease, gpus, memory)
            self._active[lease] = machine
            return lease

    def release(self, lease: Lease) -> None:
        """Give all of a lease back. Releasing one twice is a bug in the caller and raises RuntimeError."""
        machine = self._active.pop(lease, None)  # (atomic: of two releases racing, one finds it)
        if machine is None:
            raise RuntimeError("lease is not held (released twice, or from another allocator)")
        core_machine = self.cores.forget(lease.core_lease) if self.cores and lease.core_lease else None
        with machine.lock:
            machine.gpus.difference_update(lease.gpus)
            machine.reserved -= lease.memory
            if core_machine is machine:
                machine.taken.difference_update(lease.core_lease.cpus)  # type: ignore[union-attr]
        if core_machine is not None and core_machine is not machine:  # (cannot happen: attached together)
            with core_machine.lock:
                core_machine.taken.difference_update(lease.core_lease.cpus)  # type: ignore[union-attr]

    def _decide(self, request: Request) -> Choice | None:
        """The GPUs and cores to grant, or None; the caller holds the machine's lock."""
        machine = self.machine
        if request.memory and machine.memory is not None and machine.reserved + request.memory > machine.memory:
            return None
        for gpus, node in self._gpu_choices(request):
            if self.cores is None:
                return gpus, None
            within = self._node_cores(node, request) if node is not None else None
            chosen = self.cores.choose(request.threads, request.numa_node, request.cores, within)
            if chosen is not None:
                return gpus, chosen
        return None

    def _gpu_choices(self, request: Request) -> Iterator[tuple[tuple[int, ...], int | None]]:
        if request.gpus is None:
            return iter([((), None)])
        offered = self.offer.gpus
        if offered is None:  # not known (a dry run of a runner that detects its GPUs): nothing to lease
            return iter([((), None)])
        return _gpus.choices(request.gpus, offered, self.machine.gpus, self.offer.gpu_nodes, request.numa_node)

    def _node_cores(self, node: int, request: Request) -> tuple[int, ...] | None:
        """The pool's cores on a GPU's NUMA node -- the runner's ``numa_nodes`` if it declares that node, else
        the machine's -- when they can ever hold the request; None: no restriction."""
        assert self.cores is not None
        layout = self.cores.layout
        members = layout.nodes.get(node)
        if members is None:
            pool = set(layout.cores)
            members = tuple(cpu for cpu in self.offer.node_cpus.get(node, ()) if cpu in pool)
        return members if members and self.cores.units.count(members) >= request.threads else None

    # -- figures ------------------------------------------------------------------------------------------

    def available_gpus(self) -> list[int]:
        """The GPUs it offers that no command (of any runner of its machine) holds now."""
        machine = self.machine
        with machine.lock:
            taken = set(machine.gpus)
        return [gpu for gpu in self.offer.gpus or () if gpu not in taken]


def machine_memory(offers: Sequence[Offer]) -> tuple[int | None, bool]:
    """The memory commands may reserve on a machine whose seats offer these: the smallest ``memory_pool=``
    given, else the smallest default; and whether the runners gave different pools (a notice says which won)."""
    given = {offer.memory for offer in offers if offer.memory_given and offer.memory is not None}
    if given:
        return min(given), len(given) > 1
    defaults = [offer.memory for offer in offers if offer.memory is not None]
    return (min(defaults) if defaults else None), False
