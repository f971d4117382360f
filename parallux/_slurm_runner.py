"""The config's handle on a Slurm runner: one runner, a seat per allocated node (``_transports._slurm``).

Commands given to it run on any of its nodes, each node with its own slots and core pool; ``status()``
sums the nodes (``status(node="n2")`` is one node's); files go to every node, one after another, and a
result's files are read on the node that ran it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import _options as opt
from . import _transfer
from ._errors import ConfigError
from ._runner import Runner, RunnerStatus, Submit
from ._transfer import Transfer

if TYPE_CHECKING:
    from ._engine import Engine
    from ._engine._seat import Seat
    from ._transports._slurm._allocation import Allocation


class SlurmRunner(Runner):
    """A runner on a Slurm allocation (``goal.slurm()``)."""

    def __init__(self, seats: list[Seat], submit: Submit, engine: Engine, allocation: Allocation) -> None:
        super().__init__(seats[0], submit, engine)
        self._node_seats = tuple(seats)
        # The allocation as submitted, for a dry run, whose seats have no allocation to wait for (nor to report
        # a later one): the engine's seats publish the current job and nodes (their views).
        self._submitted = (allocation.job_id, tuple(allocation.node_names or ()))
        self._sbatch = allocation.request.sbatch_argv() if allocation.own else None  # (every renewal's too)
        for seat in seats:
            seat.handle = self

    @property
    def _seats(self) -> tuple[Seat, ...]:
        return self._node_seats

    @property
    def job_id(self) -> str:
        """The Slurm job holding its nodes (the current one, after a renewal)."""
        view = self._seat.view
        return view.job if view.job is not None else self._submitted[0]

    @property
    def sbatch(self) -> list[str] | None:
        """The sbatch command line that submits its allocations (None: it runs in one it did not submit)."""
        return list(self._sbatch) if self._sbatch is not None else None

    @property
    def nodes(self) -> list[str]:
        """Its nodes' names, once the allocation runs ([] while it is pending)."""
        view = self._seat.view
        return list((view.nodes or ()) if view.job is not None else self._submitted[1])

    @property
    def max_jobs(self) -> int | None:
        limits = [seat.view.max_jobs for seat in self._node_seats]
        return None if any(limit is None for limit in limits) else sum(limits)  # type: ignore[arg-type]

    @property
    def waiting(self) -> str | None:
        """What it waits for while no node is connected: ``job 12 pending (Resources)``."""
        return None if any(seat.view.connected for seat in self._node_seats) else self._seat.view.waiting

    def _state(self) -> str:
        if self.quarantined:
            return "quarantined"
        return "idle" if any(seat.view.connected for seat in self._node_seats) else self.waiting or "not connected"

    # -- figures ------------------------------------------------------------------------------------------

    def status(self, numa_node: int | None = None, node: str | None = None) -> RunnerStatus:
        """Its nodes' figures summed (core lists are per node: give ``node=`` for one node's)."""
        if node is not None:
            return self._node_status(self._seat_on(node), numa_node)
        parts = [self._node_status(seat, numa_node) for seat in self._node_seats]
        known = [p.max_jobs for p in parts if p.max_jobs is not None]
        return RunnerStatus(
            name=self.name, active_jobs=sum(p.active_jobs for p in parts),
            available_jobs=sum(p.available_jobs for p in parts), max_jobs=sum(known) if known else None,
            logical_core_count=sum(p.logical_core_count or 0 for p in parts) or None,
            configured_core_count=sum(p.configured_core_count for p in parts),
            available_core_count=sum(p.available_core_count for p in parts), numa_node=numa_node,
            connected=any(p.connected for p in parts), quarantined=self.quarantined, waiting=self.waiting,
            nodes=self.nodes, gpu_count=sum(p.gpu_count for p in parts))

    def _node_status(self, seat: Seat, numa_node: int | None) -> RunnerStatus:
        status = Runner._status(self, numa_node, seat)
        view = seat.view
        status.nodes = [view.host] if view.connected and view.host else []
        return status

    def _status(self, numa_node: int | None = None) -> RunnerStatus:
        return self.status(numa_node)

    def _seat_on(self, node: str | None) -> Seat:
        if node is None:
            return self._node_seats[0]
        for seat in self._node_seats:
            if seat.view.host == node:
                return seat
        raise ConfigError(f"{self.describe()} has no node {node!r}; its nodes are {self.nodes or '(not yet known)'}")

    # -- files --------------------------------------------------------------------------------------------

    def put(self, local: str | os.PathLike[str], remote: str | os.PathLike[str]) -> Transfer:
        """Copy a local file or tree to every node, in turn (waiting for the allocation if need be); on a
        file system the nodes share, the quick check skips on the others what the first node wrote."""
        source = opt.local_path(local, f"{self.name}.put()")
        target = opt.remote_text(remote, f"{self.name}.put()")
        return self._planned_or(self._in_engine_thread(_transfer.put_in_turn, self._node_seats, source, target,
                                                       self._engine.tell_transfer))

    def get(self, remote: str | os.PathLike[str], local: str | os.PathLike[str], node: str | None = None) -> Transfer:
        """Copy a file or tree of one node (the first unless ``node=`` names one) here."""
        seat = self._seat_on(node)
        self._in_engine_thread(seat.wait_up)
        source = _transfer.remote_path(seat, opt.remote_text(remote, f"{self.name}.get()"))
        target = opt.local_path(local, f"{self.name}.get()")
        return self._planned_or(self._in_engine_thread(_transfer.get, seat, source, target,
                                                       self._engine.tell_transfer))

    def read_file(self, path: str | os.PathLike[str], node: str | None = None) -> bytes:
        """A file of one node (the first unless ``node=`` names one), read by its launcher."""
        seat = self._seat_on(node)
        self._in_engine_thread(seat.wait_up)
        where = _transfer.remote_path(seat, opt.remote_text(path, f"{self.name}.read_file()", "path"))
        return self._in_engine_thread(_transfer.read, seat, where)

    def _read_file_on(self, host: str | None, path: str) -> bytes:
        """On the node that ran it; if a new allocation has other nodes, on the first (a shared file system)."""
        known = any(seat.view.host == host for seat in self._node_seats)
        return self.read_file(path, node=host if known else None)
