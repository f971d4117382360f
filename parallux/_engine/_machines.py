"""Machines, not runners, own CPUs: which seats run on one machine, and what follows from it.

Every launcher reports its machine's identity in its hello (the boot id, one per running kernel -- what CPUs
belong to -- and the machine id). Seats whose launchers share a boot id are on one machine: a local runner
and an SSH runner to the same host, the nodes of a test cluster on one host. They lease from one
``_cpus.MachineCpus``, so a CPU goes to one command at a time whatever the runner; each still leases only
from its own pool. Where runners of a machine lease cores, its launchers -- and so the commands they start
without a lease -- are moved to the CPUs outside every pool there, so they never run beside a pinned
command; when the pools leave no CPU outside, one notice says that they share the pinned CPUs.

A launcher that cannot tell its boot id is a machine of its own, as every runner was before.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from .._allocator import ResourceAllocator, machine_memory
from .._cores import CoreAllocator
from .._cpus import MachineCpus
from .._sizes import format_size
from .._protocol import LauncherClient


class Seat(Protocol):
    """What a machine knows of a seat (``_seat.Seat``, which imports this module)."""

    name: str
    facts: dict[str, Any]
    allocator: CoreAllocator | None
    resources: ResourceAllocator
    machine: Machine | None
    client: LauncherClient | None
    home_cpus: list[int] | None

    @property
    def host(self) -> str | None: ...


class Machine:
    """One machine: its name in messages, its leased CPUs, the seats whose launchers run there."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.cpus = MachineCpus()
        self.seats: list[Seat] = []
        self.said_covered = False
        self.said_memory = False
        self.holds = 0  # while above 0 its seats start no command: its environment is read, its probes run

    def seat_names(self, seats: list[Seat] | None = None) -> list[str]:
        """Runner names; ``name@node`` for a runner with several seats here (a batch runner's nodes)."""
        seats = self.seats if seats is None else seats
        names = [seat.name for seat in self.seats]
        ordered = sorted(seats, key=lambda seat: (names.index(seat.name), str(seat.host)))  # (nodes join in any order)
        return [seat.name if names.count(seat.name) == 1 else f"{seat.name}@{seat.host}" for seat in ordered]


class Machines:
    """The machines of a run, by boot id (engine thread)."""

    def __init__(self, notice: Callable[[str], None],
                 joined: Callable[[Machine, Seat], None] = lambda machine, seat: None) -> None:
        self._by_id: dict[Any, Machine] = {}
        self._notice = notice
        self._joined = joined  # what the run records of its machines hears of each arrival (_environment)

    def join(self, seat: Seat) -> Machine:
        """Seat a connected launcher on its machine (again, after a new batch allocation): its allocator leases
        from the machine's CPUs from now on, and the machine's launchers move off its pools."""
        if seat.machine is not None:
            seat.machine.seats.remove(seat)
        boot_id = (seat.facts.get("machine") or {}).get("boot_id")
        key = boot_id if isinstance(boot_id, str) and boot_id else object()  # unknown: a machine of its own
        machine = self._by_id.get(key)
        if machine is None:
            machine = self._by_id[key] = Machine(self._label(seat))
        machine.seats.append(seat)
        seat.machine = machine
        seat.resources.attach(machine.cpus, seat.facts.get("siblings"))
        self._pool_memory(machine)
        self._keep_off_the_pools(machine)
        self._joined(machine, seat)
        return machine

    def _label(self, seat: Seat) -> str:
        """The machine's hostname; made unique when two machines of the run have the same."""
        name = str(seat.facts.get("hostname") or seat.host or seat.name)
        taken = {machine.label for machine in self._by_id.values()}
        return name if name not in taken else f"{name} ({(seat.facts.get('machine') or {}).get('boot_id') or 'no boot id'})"

    def _pool_memory(self, machine: Machine) -> None:
        """The memory its commands may reserve: the smallest memory_pool= of its runners (one notice when they
        differ), else its memory less 10%."""
        memory, differ = machine_memory([seat.resources.offer for seat in machine.seats])
        with machine.cpus.lock:
            machine.cpus.memory = memory
        if differ and not machine.said_memory:
            machine.said_memory = True
            given = ", ".join(f"{seat.name} {format_size(seat.resources.offer.memory or 0)}" for seat in machine.seats
                              if seat.resources.offer.memory_given)
            self._notice(f"the runners of machine {machine.label} give different memory_pool= ({given}): the "
                         f"smallest, {format_size(memory or 0)}, is what commands there may reserve")

    def _keep_off_the_pools(self, machine: Machine) -> None:
        pooled = [seat for seat in machine.seats if seat.allocator is not None]
        if not pooled:
            return
        reserved = frozenset().union(*(seat.allocator.claims() for seat in pooled))  # type: ignore[union-attr]
        covered = False
        for seat in machine.seats:
            cpus = seat.facts.get("cpus")
            if not cpus:  # (a dry run's SSH runner: nothing known, nothing to move)
                continue
            outside = sorted(set(cpus) - reserved)
            move_home(seat, outside or None)
            covered = covered or not outside
        if covered and not machine.said_covered:
            machine.said_covered = True
            names = ", ".join(machine.seat_names(pooled))
            self._notice(f"the core pools of machine {machine.label} (runner{'s' if len(pooled) > 1 else ''} "
                         f"{names}) cover every CPU: commands without a core lease, and the launchers, share the "
                         "pinned CPUs")

    def summary_lines(self) -> list[str]:
        """One line per machine that several runners share."""
        return [f"  runners {', '.join(machine.seat_names())} share machine {machine.label} (one core allocator)"
                for machine in list(self._by_id.values()) if len(machine.seats) > 1]


def move_home(seat: Seat, cpus: list[int] | None) -> None:
    """A seat's launcher, and the commands it starts without a lease, run on ``cpus`` (None: every CPU)."""
    if cpus != seat.home_cpus and seat.client is not None:
        seat.client.move(cpus)
        seat.home_cpus = cpus
