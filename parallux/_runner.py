"""The config's handle on a runner: ``goal.local()``, ``goal.ssh()`` and the pool's items are these.

A handle holds nothing of the engine's: its seat (``_engine._seat``) has the limits, the launcher and the
facts, and the handle reads what the seat publishes of them (``_runner_view``: its view, its load; the free
cores from its allocator) or crosses into the engine thread for files. It submits commands through the
callable it was given, never through the ``Goal``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar

from . import _options as opt
from ._command_options import refuse_positionals
from . import _transfer
from ._attributes import TypoChecked
from ._errors import ConfigError, ParalluxError
from ._transfer import Transfer

if TYPE_CHECKING:
    from ._engine import Engine
    from ._engine._seat import Seat
    from ._handles import Command
    from ._transports._ssh import SshTransport

T = TypeVar("T")
Submit = Callable[["Runner", Any, "dict[str, Any]"], "Command"]


@dataclass
class RunnerStatus:
    """A snapshot of a runner's load; ``configured_*``/``available_*`` are empty without a core pool."""

    name: str
    active_jobs: int
    available_jobs: int
    max_jobs: int | None
    logical_core_count: int | None
    configured_cores: list[int] = field(default_factory=list)
    configured_core_count: int = 0
    available_cores: list[int] = field(default_factory=list)
    available_core_count: int = 0
    numa_node: int | None = None
    connected: bool = True
    quarantined: str | None = None
    waiting: str | None = None   # what a runner not connected yet waits for (a pending Slurm allocation)
    nodes: list[str] = field(default_factory=list)  # a Slurm runner's nodes, once allocated
    gpu_count: int = 0  # the GPUs it offers (0: none, or not known yet)
    available_gpus: list[int] = field(default_factory=list)  # those no command holds now


def _figure(field: str, per_node: bool = False) -> Callable[..., Any]:
    """A shortcut method for one field of :meth:`Runner.status`."""
    if per_node:
        def of_node(self: Runner, numa_node: int | None = None) -> Any:
            return getattr(self._status(numa_node), field)
        shortcut = of_node
    else:
        def of_runner(self: Runner) -> Any:
            return getattr(self._status(), field)
        shortcut = of_runner
    shortcut.__name__ = shortcut.__qualname__ = field
    shortcut.__doc__ = f"``status({'numa_node' if per_node else ''}).{field}``"
    return shortcut


class Runner(TypoChecked):
    """A place commands run: limits (``max_jobs``), an optional core pool, a workspace and an environment."""

    _label = "runner"

    def __init__(self, seat: Seat, submit: Submit, engine: Engine) -> None:
        self._seat = seat
        self._submit = submit
        self._engine = engine
        self.name = seat.name
        view = seat.view
        self.kind = view.kind
        self.env = view.env
        self.membind = view.membind
        self.whole_cores = view.whole_cores
        seat.handle = self

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_calls(cls)  # another kind of runner's public methods are checked like these

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- what it is ------------------------------------------------------------------------------------

    @property
    def workspace(self) -> str:
        """The workspace as an absolute path on the runner (once connected)."""
        return self._seat.view.workspace

    @property
    def max_jobs(self) -> int | None:
        return self._seat.view.max_jobs

    @property
    def facts(self) -> dict[str, Any]:
        """What its launcher reported of its machine (hostname, cores, home, ...): a copy, a plain dict (the
        published view's mapping is read-only; a config may change or ``json.dumps`` what it is given)."""
        return dict(self._seat.view.facts)

    @property
    def quarantined(self) -> str | None:
        return self._seat.view.quarantined

    def describe(self) -> str:
        return self._seat.view.description

    @property
    def _seats(self) -> tuple[Seat, ...]:
        """The seats its commands may run on: one, or a Slurm runner's nodes."""
        return (self._seat,)

    def _state(self) -> str:
        """What its line in the live display says when nothing runs there."""
        view = self._seat.view
        return "quarantined" if view.quarantined else "idle" if view.connected else \
            "reconnecting" if view.reconnecting else "not connected"

    # -- commands and figures (main thread) ------------------------------------------------------------

    def run(self, command: str | list[str] = opt.MISSING, *extra: Any, **options: Any) -> Command:
        """Submit one command now, pinned to this runner; returns its handle without waiting."""
        if command is opt.MISSING or extra:  # not checked by a wrapper: called once per command
            refuse_positionals(f"{self.name}.run()", command, extra)
        return self._submit(self, command, options)

    def status(self, numa_node: int | None = None) -> RunnerStatus:
        """Live figures: jobs running and free here, and (with a core pool) cores configured and free."""
        return self._status(numa_node)

    def _status(self, numa_node: int | None = None, seat: Seat | None = None) -> RunnerStatus:
        """The figures of one seat: its own, or one of a Slurm runner's nodes."""
        seat = seat or self._seat
        view, active = seat.view, seat.load.active  # (the view: one event's; the load: this moment's)
        if opt.numa_node(numa_node) is not None and (view.layout is None or numa_node not in view.layout.nodes):
            raise ConfigError(f"{self.describe()} has no NUMA node {numa_node!r}")
        configured = seat.allocator.configured(numa_node) if seat.allocator else []
        available = seat.allocator.available(numa_node) if seat.allocator else []
        limit = view.max_jobs
        return RunnerStatus(
            name=self.name, active_jobs=active,
            available_jobs=max(0, limit - active) if limit is not None else 0, max_jobs=limit,
            logical_core_count=view.facts.get("logical_cores"), configured_cores=configured,
            configured_core_count=len(configured), available_cores=available,
            available_core_count=len(available), numa_node=numa_node, connected=view.connected,
            quarantined=view.quarantined, waiting=f"reconnecting: {view.reconnecting}" if view.reconnecting else None,
            gpu_count=len(view.offer.gpus or ()), available_gpus=seat.resources.available_gpus())

    # The status() shortcuts of the seed: each one figure of status() (of one NUMA node where it has cores).
    active_jobs = _figure("active_jobs")
    available_jobs = _figure("available_jobs")
    logical_core_count = _figure("logical_core_count")
    configured_cores = _figure("configured_cores", per_node=True)
    configured_core_count = _figure("configured_core_count", per_node=True)
    available_cores = _figure("available_cores", per_node=True)
    available_core_count = _figure("available_core_count", per_node=True)
    gpu_count = _figure("gpu_count")
    available_gpus = _figure("available_gpus")

    # -- files (main thread; see _transfer) -------------------------------------------------------------

    def put(self, local: str | os.PathLike[str], remote: str | os.PathLike[str]) -> Transfer:
        """Copy a local file or directory tree to this runner, over its launcher; what is already there
        with the same size and mtime is skipped. See docs/reference.md ("Files on runners")."""
        source = opt.local_path(local, f"{self.name}.put()")
        target = self._remote_path(opt.remote_text(remote, f"{self.name}.put()"))
        return self._planned_or(self._in_engine_thread(_transfer.put, self._seat, source, target,
                                                       self._engine.tell_transfer))

    def get(self, remote: str | os.PathLike[str], local: str | os.PathLike[str]) -> Transfer:
        """Copy a file or directory tree of this runner here (the mirror of :meth:`put`)."""
        source = self._remote_path(opt.remote_text(remote, f"{self.name}.get()"))
        target = opt.local_path(local, f"{self.name}.get()")
        return self._planned_or(self._in_engine_thread(_transfer.get, self._seat, source, target,
                                                       self._engine.tell_transfer))

    def read_file(self, path: str | os.PathLike[str]) -> bytes:
        """A file of this runner's (a result's stdout, say), read by its launcher; ``b""`` in a dry run."""
        where = self._remote_path(opt.remote_text(path, f"{self.name}.read_file()", "path"))
        return self._in_engine_thread(_transfer.read, self._seat, where)

    def _read_file_on(self, host: str | None, path: str) -> bytes:
        """A result's file, from the machine that ran it (``host``; one of a Slurm runner's nodes)."""
        return self.read_file(path)

    def _remote_path(self, text: str) -> str:
        """A path on this runner made absolute: relative ones are in its workspace, ``~`` is its home."""
        return _transfer.remote_path(self._seat, text)

    @staticmethod
    def _planned_or(transfer: Transfer) -> Transfer:
        """A dry run's transfer copied nothing: its plan line, as the plan of a command is one."""
        if transfer._planned:
            print(transfer._what, flush=True)
        return transfer

    def _in_engine_thread(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        try:
            return self._engine.call_async(fn, *args)
        except ParalluxError as exc:  # raised in the engine thread: its Trio frames mean nothing to a config
            raise exc.with_traceback(None) from None


def _check_calls(cls: type) -> None:
    """Every public method of a runner refuses bad arguments with a ConfigError naming ``<runner>.<method>()``
    (see ``_options.checked``); ``run()`` checks its own, being called once per command."""
    def where(method: str) -> Callable[[tuple[Any, ...]], str]:
        return lambda args: f"{getattr(args[0], 'name', 'runner') if args else 'runner'}.{method}()"
    opt.check_public_methods(cls, where, exempt=("run",))


_check_calls(Runner)


class SshRunner(Runner):
    """A runner on another machine: one SSH connection, one remote launcher (``_transports._ssh``)."""

    def __init__(self, seat: Seat, submit: Submit, engine: Engine, transport: SshTransport) -> None:
        super().__init__(seat, submit, engine)
        self._ssh = transport  # its options as given (a dry run's seat has a plan in its place)

    @property
    def host(self) -> str:
        return self._ssh.host

    @property
    def user(self) -> str | None:
        return self._ssh.user

    @property
    def port(self) -> int | None:
        return self._ssh.port

    @property
    def python(self) -> str | None:
        return self._ssh.python
