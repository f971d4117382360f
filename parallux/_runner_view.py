"""What the main thread reads of a runner: a view the engine publishes, and the load it counts.

A seat (``_engine._seat``) is the engine thread's: it writes the seat's state as its launcher comes and goes.
The config's handles (``_runner``, ``_slurm_runner``), registration, ``--resume``, the run log and the live
display read a seat only through what it publishes here, so that no reader in another thread ever sees a
runner half-changed (connected, but its workspace not yet resolved):

- ``RunnerView``: immutable; the engine makes a new one on each of the seat's events -- the launcher's hello,
  its end, a relaunch, a dropped and restored connection, a quarantine, a change of its batch allocation --
  and publishes it by one reference assignment (``Seat.publish``). Never per command.
- ``Load``: the commands running there now, one int the engine thread alone writes, as it starts and ends
  each command.

Live resource figures (free cores, free GPUs) are the seat's allocators', read under its machine's lock.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from ._cores import CoreLayout
    from ._handles import Settled
    from ._resources import Offer

NO_FACTS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RunnerView:
    """A runner as the engine last published it. Its options never change; the rest is as of its last event."""

    name: str
    kind: str
    env: Mapping[str, str]           # the runner's env= (the config's own; the engine only reads it)
    membind: bool
    whole_cores: bool
    layout: CoreLayout | None        # its core pool, if any
    time_limit: float | None         # the longest a command may run there (a batch allocation's)
    description: str                 # how reports name it: ``runner 'a'``, a Slurm node's with its job
    workspace: str                   # absolute once connected; before, as given (``~/parallux``)
    settled: Settled                 # what its finished commands keep of their work dirs
    max_jobs: int | None             # resolved once connected
    connected: bool                  # its launcher said hello and is reachable now
    reconnecting: str | None         # why its connection is down while it is reconnected
    quarantined: str | None          # why the engine took it out of the pool
    waiting: str | None              # what a launcher to come waits for, or why none will
    host: str | None                 # the machine its commands run on, as results name it
    facts: Mapping[str, Any]         # what its launcher's hello said (read-only)
    offer: Offer                     # what that hello offers beside the core pool: GPUs, memory
    machine: str | None              # the label of the machine its launcher runs on
    login: tuple[str, ...]           # the argv prefix that runs a shell command there
    job: str | None                  # its batch allocation's job, if it has one
    nodes: tuple[str, ...] | None    # that allocation's nodes, once it runs

    @property
    def home(self) -> str:
        return str(self.facts.get("home", "~"))

    def work_dir_of(self, work_relpath: str) -> str:
        return posixpath.normpath(posixpath.join(self.workspace, work_relpath))


class Load:
    """The commands running on a seat now: written by the engine thread alone, read from any thread."""

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active = 0


def view_of(seat: Any) -> RunnerView:
    """A new view of ``seat`` (an ``_engine._seat.Seat``): its options and its state now. Only the seat's
    own thread calls this -- the main thread as it makes the seat, then the engine thread."""
    batch = seat.batch
    return RunnerView(
        name=seat.name, kind=seat.transport.kind, env=seat.env, membind=seat.membind,
        whole_cores=seat.whole_cores, layout=seat.layout, time_limit=seat.time_limit,
        description=seat.describe(), workspace=seat.workspace, settled=seat.settled, max_jobs=seat.max_jobs,
        connected=seat.alive, reconnecting=seat.reconnecting, quarantined=seat.quarantined,
        waiting=seat.relaunch.waiting, host=seat.host,
        facts=MappingProxyType(seat.facts) if seat.facts else NO_FACTS, offer=seat.resources.offer,
        machine=seat.machine.label if seat.machine is not None else None, login=tuple(seat.transport.login),
        job=batch.job_id if batch is not None else None,
        nodes=tuple(batch.node_names) if batch is not None and batch.node_names else None)
