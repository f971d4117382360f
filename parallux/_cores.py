"""The core allocator: which logical CPUs of a runner a command may use.

A runner with a core pool hands each command a :class:`Lease` of ``threads`` cores, which the command runs on
(``numactl --physcpubind=...``) and gives back when it ends. The allocator is plain synchronous code guarded by
a ``threading.Lock``: every decision is made and applied under the lock, so no two leases ever share a core,
whichever thread or task asks. The lock and the set of leased CPUs are its machine's (``_cpus.MachineCpus``),
shared with the allocators of every other runner there once its launcher has said which machine it is on
(:meth:`CoreAllocator.attach`): a CPU goes to one command at a time, whatever the runner. With
``whole_cores=True`` a lease takes physical cores (``_cpus.CoreUnits``). It knows nothing about trio or
processes, so it is tested as plain functions.

Placement policy, in order of preference (see :meth:`CoreAllocator.try_lease`):

* ``cores=[...]``: exactly those cores, or nothing.
* ``numa_node=N``: the lowest free cores of node N.
* otherwise, with NUMA nodes declared: the *best-fitting* single node — the one with the fewest free cores
  that can still hold the request — so that large free blocks stay whole for large requests later; only when
  no single node can hold the request is it spread over several, taking first from the nodes (and the group
  of cores outside any node) with the most free cores, so that it touches as few nodes as possible.
* otherwise: the lowest free cores of the pool.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ._cpus import CoreUnits, MachineCpus
from ._errors import ConfigError

_CONTAINERS = (range, list, tuple, set, frozenset)


@dataclass(frozen=True)
class CoreLayout:
    """The cores a runner manages and how they group into NUMA nodes (validated, immutable)."""

    cores: tuple[int, ...]
    nodes: dict[int, tuple[int, ...]]

    def node_of(self, core: int) -> int | None:
        """The node holding ``core``; None when it is in no declared node (or no nodes are declared)."""
        for node, members in self.nodes.items():
            if core in members:
                return node
        return None

    def unassigned(self) -> tuple[int, ...]:
        """Pool cores outside every declared node (all of them when no nodes are declared)."""
        assigned = {core for members in self.nodes.values() for core in members}
        return tuple(core for core in self.cores if core not in assigned)


def parse_core_layout(core_pool: object, numa_nodes: object) -> CoreLayout | None:
    """Validate a runner's ``core_pool`` / ``numa_nodes`` options; None when neither was given.

    Errors are raised here, when the runner is declared, rather than when the first command asks for cores,
    so that a typo in a config fails before anything has run.
    """
    if core_pool is None and numa_nodes is None:
        return None
    nodes = _parse_nodes(numa_nodes) if numa_nodes is not None else {}
    if core_pool is None:
        pool = tuple(sorted(core for members in nodes.values() for core in members))
    else:
        pool = _parse_core_list(core_pool, "core_pool")
        _check_nodes_inside_pool(nodes, pool)
    return CoreLayout(cores=pool, nodes=nodes)


def _parse_core_list(value: object, what: str) -> tuple[int, ...]:
    """A sorted tuple of distinct non-negative core ids, or ConfigError naming ``what`` and the bad value."""
    if not isinstance(value, _CONTAINERS):
        raise ConfigError(f"{what} must be a range, list, tuple or set of core ids, not {value!r}")
    cores = [_parse_core_id(item, what) for item in value]
    if not cores:
        raise ConfigError(f"{what} is empty: it must name at least one core")
    seen: set[int] = set()
    for core in cores:
        if core in seen:
            raise ConfigError(f"{what} names core {core} more than once")
        seen.add(core)
    return tuple(sorted(cores))


def _parse_core_id(item: object, what: str) -> int:
    # bool is an int subclass, but `True` in a core list is always a mistake.
    if isinstance(item, bool):
        raise ConfigError(f"{what}: core id must be an integer, not {item!r}")
    try:
        core = operator.index(item)
    except TypeError:
        raise ConfigError(f"{what}: core id must be an integer, not {item!r}") from None
    if core < 0:
        raise ConfigError(f"{what}: core id must not be negative, got {core}")
    return core


def _parse_nodes(numa_nodes: object) -> dict[int, tuple[int, ...]]:
    """Validate ``numa_nodes``; nodes are returned in ascending id order, each with sorted cores."""
    if not isinstance(numa_nodes, Mapping):
        raise ConfigError(f"numa_nodes must be a dict {{node: cores}}, not {numa_nodes!r}")
    if not numa_nodes:
        raise ConfigError("numa_nodes is empty: it must declare at least one node")
    nodes: dict[int, tuple[int, ...]] = {}
    owner: dict[int, int] = {}
    for node in sorted(numa_nodes, key=_node_sort_key):
        node_id = _parse_node_id(node)
        nodes[node_id] = _parse_core_list(numa_nodes[node], f"numa_nodes[{node_id}]")
        for core in nodes[node_id]:
            if core in owner:
                raise ConfigError(f"numa nodes {owner[core]} and {node_id} overlap: both contain core {core}")
            owner[core] = node_id
    return nodes


def _node_sort_key(node: object) -> tuple[int, str]:
    # Sorting must not fail on bad keys before _parse_node_id can report them with a clear message.
    return (node, "") if isinstance(node, int) and not isinstance(node, bool) else (-1, repr(node))


def _parse_node_id(node: object) -> int:
    if isinstance(node, bool) or not isinstance(node, int):
        raise ConfigError(f"numa_nodes: node id must be an integer, not {node!r}")
    if node < 0:
        raise ConfigError(f"numa_nodes: node id must not be negative, got {node}")
    return node


def _check_nodes_inside_pool(nodes: Mapping[int, tuple[int, ...]], pool: tuple[int, ...]) -> None:
    in_pool = set(pool)
    for node, members in nodes.items():
        outside = [core for core in members if core not in in_pool]
        if outside:
            raise ConfigError(f"numa node {node} has cores outside core_pool: {format_cores(outside)}")


def format_cores(cores: Iterable[int]) -> str:
    """Cores as numactl's ``--physcpubind`` wants them: ``"0,1,4"``."""
    return ",".join(str(core) for core in cores)


@dataclass(frozen=True, eq=False)
class Lease:
    """Cores granted to one command until it gives them back with :meth:`CoreAllocator.release`.

    Leases compare by identity: two grants of the same cores at different times are different leases, which
    is what lets the allocator tell a stale double release from a release of the current holder.
    """

    cores: tuple[int, ...]
    numa_node: int | None
    held: tuple[int, ...] = ()  # every CPU it keeps: its cores and, with whole_cores, their idle siblings

    @property
    def cpus(self) -> tuple[int, ...]:
        return self.held or self.cores


class CoreAllocator:
    """Hands out disjoint sets of cores from a :class:`CoreLayout`; safe to call from any thread."""

    def __init__(self, layout: CoreLayout, whole_cores: bool = False) -> None:
        self.layout = layout
        self.whole_cores = whole_cores
        self._pool = frozenset(layout.cores)
        self._unassigned = layout.unassigned()
        self._active: dict[Lease, MachineCpus] = {}  # each lease goes back to the machine it came from
        self.machine = MachineCpus()  # its own, until its launcher says which machine it is on
        self.units = CoreUnits(layout.cores, whole_cores)

    def attach(self, machine: MachineCpus, siblings: Sequence[Sequence[int]] | None = None) -> None:
        """Lease from now on from ``machine``'s CPUs, shared with its other runners; ``siblings`` (the
        machine's physical cores as lists of their threads) decide what a whole-core lease takes."""
        self.units = CoreUnits(self.layout.cores, self.whole_cores, siblings)
        self.machine = machine

    def claims(self) -> frozenset[int]:
        """The CPUs its leases may hold (the pool, and with whole cores the pool's siblings)."""
        return self.units.claims

    def overlaps(self, other: CoreAllocator) -> bool:
        """Whether a lease of one may take CPUs the other could lease (one machine, pools that meet)."""
        return self.machine is other.machine and not self.units.claims.isdisjoint(other.units.claims)

    def check_request(self, threads: int, numa_node: int | None, cores: Sequence[int] | None) -> None:
        """Raise ConfigError if this request could never be granted, even on an idle runner.

        ``threads`` is the final thread count: a caller that lets ``cores`` imply ``threads`` must pass
        ``len(cores)``. Checking once at submission turns an impossible request into an error instead of a
        command that waits for cores forever.
        """
        self._validated(threads, numa_node, cores)

    def try_lease(self, threads: int, numa_node: int | None = None,
                  cores: Sequence[int] | None = None) -> Lease | None:
        """Take cores for a command now, or return None if they are not free at the moment.

        Raises ConfigError for a request that could never be granted (see :meth:`check_request`), so a
        caller retrying on None cannot wait forever.
        """
        wanted = self._validated(threads, numa_node, cores)
        with self.machine.lock:
            chosen = self.choose(threads, numa_node, wanted)
            return None if chosen is None else self.grant(chosen)

    def choose(self, threads: int, numa_node: int | None, wanted: tuple[int, ...] | None,
               within: Sequence[int] | None = None) -> tuple[int, ...] | None:
        """The cores a validated request would get now (``within``: only among these pool cores, a GPU's
        node), or None; the caller holds the machine's lock (the resource allocator, leasing GPUs with them)."""
        if within is not None and numa_node is None and wanted is None:
            return _lowest(self.units.free_in(within, self.machine.taken), threads)
        return self._choose(threads, numa_node, wanted, self.machine.taken, self.units)

    def grant(self, chosen: tuple[int, ...]) -> Lease:
        """Lease the cores :meth:`choose` chose, under the machine's lock still held."""
        machine = self.machine
        held = self.units.held_by(chosen)
        machine.taken.update(held)
        lease = Lease(cores=chosen, numa_node=self._common_node(chosen), held=held)
        self._active[lease] = machine
        return lease

    def could_fit_now(self, threads: int, numa_node: int | None = None,
                      cores: Sequence[int] | None = None) -> bool:
        """Whether :meth:`try_lease` would succeed right now (a snapshot: it may change at once)."""
        wanted = self._validated(threads, numa_node, cores)
        machine = self.machine
        with machine.lock:
            return self._choose(threads, numa_node, wanted, machine.taken, self.units) is not None

    def _validated(self, threads: int, numa_node: int | None,
                   cores: Sequence[int] | None) -> tuple[int, ...] | None:
        """Check a request (see :meth:`check_request`) and return ``cores`` as a sorted tuple."""
        _check_threads(threads)
        if numa_node is not None:
            self._check_node(numa_node)
        wanted = None if cores is None else self._check_cores(threads, numa_node, cores)
        if numa_node is not None:
            self._check_capacity(threads, self.layout.nodes[numa_node], f"numa node {numa_node}")
        self._check_capacity(threads, self.layout.cores, "the pool")
        return wanted

    def _check_capacity(self, threads: int, members: Sequence[int], where: str) -> None:
        if not self.whole_cores and threads > len(members):
            raise ConfigError(f"threads={threads} is more than the {len(members)} cores of {where}")
        if self.whole_cores and threads > (count := self.units.count(members)):
            raise ConfigError(f"threads={threads} is more than the {count} physical "
                              f"core{'' if count == 1 else 's'} of {where} (whole_cores=True leases whole cores)")

    def _check_node(self, numa_node: int) -> None:
        # `True in {1: ...}` holds, so a bool must be turned away before the membership test.
        if isinstance(numa_node, bool) or numa_node not in self.layout.nodes:
            declared = ", ".join(str(node) for node in self.layout.nodes) or "none"
            raise ConfigError(f"numa_node={numa_node!r} is not a declared numa node (declared: {declared})")

    def _check_cores(self, threads: int, numa_node: int | None, cores: Sequence[int]) -> tuple[int, ...]:
        if isinstance(cores, (str, bytes)) or not isinstance(cores, Iterable):
            raise ConfigError(f"cores must be a list of core ids, not {cores!r}")
        wanted = [_parse_core_id(core, "cores") for core in cores]
        if len(set(wanted)) != len(wanted):
            raise ConfigError(f"cores={wanted!r} names a core more than once")
        outside = [core for core in wanted if core not in self._pool]
        if outside:
            raise ConfigError(f"cores {format_cores(outside)} are not in the runner's core pool")
        if len(wanted) != threads:
            raise ConfigError(f"cores={wanted!r} names {len(wanted)} cores but threads={threads}")
        if numa_node is not None:
            foreign = [core for core in wanted if core not in self.layout.nodes[numa_node]]
            if foreign:
                raise ConfigError(f"cores {format_cores(foreign)} are not in numa node {numa_node}")
        self.units.check_exact(sorted(wanted))
        return tuple(sorted(wanted))

    def release(self, lease: Lease) -> None:
        """Give a lease's cores back. Releasing a lease twice is a bug in the caller and raises RuntimeError."""
        machine = self.forget(lease)
        with machine.lock:
            machine.taken.difference_update(lease.cpus)

    def forget(self, lease: Lease) -> MachineCpus:
        """The machine a held lease came from, the lease no longer held (its CPUs are the caller's to free)."""
        machine = self._active.pop(lease, None)  # (atomic: of two releases racing, one finds it)
        if machine is None:
            raise RuntimeError(f"lease of cores {format_cores(lease.cores)} is not held "
                               "(released twice, or from another allocator)")
        return machine

    def available(self, numa_node: int | None = None) -> list[int]:
        """Pool cores no lease holds right now (whichever runner's), sorted; only those of ``numa_node``."""
        machine = self.machine
        with machine.lock:
            taken = set(machine.taken)
        return [core for core in self.configured(numa_node) if core not in taken]

    def configured(self, numa_node: int | None = None) -> list[int]:
        """All managed cores, sorted; only those of ``numa_node`` when given."""
        if numa_node is None:
            return list(self.layout.cores)
        self._check_node(numa_node)
        return list(self.layout.nodes[numa_node])

    def _choose(self, threads: int, numa_node: int | None, cores: tuple[int, ...] | None, taken: set[int],
                units: CoreUnits) -> tuple[int, ...] | None:
        """The cores to grant, or None; caller holds the machine's lock and has validated the request."""
        if cores is not None:
            return cores if units.all_free(cores, taken) else None
        if numa_node is not None:
            return _lowest(units.free_in(self.layout.nodes[numa_node], taken), threads)
        if not self.layout.nodes:
            return _lowest(units.free_in(self.layout.cores, taken), threads)
        free_by_node = [(node, units.free_in(members, taken)) for node, members in self.layout.nodes.items()]
        return _best_single_node(threads, free_by_node) or \
            _spread(threads, free_by_node, units.free_in(self._unassigned, taken))

    def _common_node(self, cores: tuple[int, ...]) -> int | None:
        nodes = {self.layout.node_of(core) for core in cores}
        return nodes.pop() if len(nodes) == 1 else None


def _best_single_node(threads: int, free_by_node: list[tuple[int, list[int]]]) -> tuple[int, ...] | None:
    """Lowest cores of the fullest node that still has room: keeps big free blocks for big requests."""
    fits = [(len(free), node, free) for node, free in free_by_node if len(free) >= threads]
    if not fits:
        return None
    _, _, free = min(fits, key=lambda fit: (fit[0], fit[1]))
    return _lowest(free, threads)

def _spread(threads: int, free_by_node: list[tuple[int, list[int]]],
            unassigned: list[int]) -> tuple[int, ...] | None:
    """Spread over the groups with most free cores first, to span as few nodes as possible.

    Cores outside every node form one more group here; they are not preferred as a "single node" because
    nothing is known about their locality.
    """
    groups = [free for _, free in free_by_node] + [unassigned]
    groups.sort(key=len, reverse=True)
    taken: list[int] = []
    for free in groups:
        taken += free[: threads - len(taken)]
    return tuple(sorted(taken)) if len(taken) == threads else None


def _check_threads(threads: object) -> None:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be a positive integer, not {threads!r}")


def _lowest(free: Sequence[int], threads: int) -> tuple[int, ...] | None:
    """The ``threads`` lowest of the sorted ``free`` cores, or None if there are too few."""
    return tuple(free[:threads]) if len(free) >= threads else None
