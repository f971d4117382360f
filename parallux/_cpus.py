"""The CPUs of one machine: which are leased right now, whichever runner leased them, and what a lease of a
runner takes of them.

Machines, not runners, own CPUs: a local runner and an SSH runner to the same host, or the nodes of a test
cluster on one host, lease from one :class:`MachineCpus`, so that a CPU goes to one command at a time. Each
runner's allocator (``_cores.CoreAllocator``) still leases only from its own pool, through its
:class:`CoreUnits`: its pool's CPUs one by one or, with ``whole_cores=True``, its physical cores -- one thread
of each bound, its SMT siblings held idle for the lease's duration (BenchExec's rule: never split siblings).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from ._errors import ConfigError


class MachineCpus:
    """What of one machine is leased right now -- its CPUs, its GPUs, its memory reserved -- and the lock every
    allocator there decides under (``_allocator.ResourceAllocator`` leases all of a request under it at once)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.taken: set[int] = set()
        self.gpus: set[int] = set()  # GPU indices leased now
        self.reserved = 0  # bytes of memory= reserved by the commands running now
        self.memory: int | None = None  # the bytes commands may reserve (memory_pool=); None: no limit known


class CoreUnits:
    """What one runner leases: each unit is a CPU to bind and the CPUs the lease holds with it.

    ``siblings`` are the machine's physical cores as lists of their logical CPUs (the launcher's hello); a CPU
    it does not list is a core of its own. Without ``whole_cores`` a unit is one CPU and holds just itself.
    """

    def __init__(self, pool: Sequence[int], whole_cores: bool = False,
                 siblings: Iterable[Sequence[int]] | None = None) -> None:
        self.whole_cores = whole_cores
        core_of = {cpu: tuple(sorted(group)) for group in (siblings or ()) for cpu in group}
        self.holds = {cpu: core_of.get(cpu, (cpu,)) if whole_cores else (cpu,) for cpu in pool}
        seen: set[tuple[int, ...]] = set()
        bindable = []
        for cpu in sorted(pool):  # the lowest pool thread of each core is the one bound
            if self.holds[cpu] not in seen:
                seen.add(self.holds[cpu])
                bindable.append(cpu)
        self.bindable = frozenset(bindable)
        self.claims = frozenset(cpu for held in self.holds.values() for cpu in held)  # every CPU its leases may
        # hold: the pool and, with whole cores, the pool's siblings

    def free_in(self, members: Iterable[int], taken: set[int]) -> list[int]:
        """The units among ``members`` (sorted pool CPUs) whose CPUs are all free."""
        if not self.whole_cores:
            return [cpu for cpu in members if cpu not in taken]
        return [cpu for cpu in members if cpu in self.bindable and taken.isdisjoint(self.holds[cpu])]

    def held_by(self, cores: Iterable[int]) -> tuple[int, ...]:
        return tuple(sorted({cpu for core in cores for cpu in self.holds[core]}))

    def all_free(self, cores: Iterable[int], taken: set[int]) -> bool:
        return all(taken.isdisjoint(self.holds[core]) for core in cores)

    def count(self, members: Iterable[int]) -> int:
        """How many units ``members`` hold: the most threads a lease of them can have."""
        return sum(1 for cpu in members if cpu in self.bindable)

    def check_exact(self, cores: Sequence[int]) -> None:
        """``cores=[...]`` with whole cores may not name two threads of one core: it binds one per core."""
        if not self.whole_cores:
            return
        owner: dict[tuple[int, ...], int] = {}
        for core in cores:
            first = owner.setdefault(self.holds[core], core)
            if first != core:
                raise ConfigError(f"cores {min(first, core)} and {max(first, core)} are SMT siblings of one core: "
                                  "with whole_cores=True a lease binds one thread per physical core")
