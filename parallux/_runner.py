"""Runners: where commands run. A runner is a transport to a launcher, plus limits, cores and a workspace.

The engine never knows what kind of runner it drives: every runner opens a byte-stream pair to a launcher
(``_open_launcher``), hands it to a :class:`LauncherClient`, and executes commands as requests to it. The local
runner's stream is a child process's pipes; the SSH runner (``_ssh.py``) overrides ``_open_launcher`` with one
SSH channel. Everything else -- work dirs, environment, numactl binding, timeouts, kills -- is shared here.
"""

from __future__ import annotations

import itertools
import os
import posixpath
import shlex
import signal
import subprocess
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Iterable, Mapping, TypeVar

import trio

from . import _options as opt
from . import _prespawn, _transfer
from ._cores import CoreAllocator, CoreLayout, Lease, format_cores
from ._errors import ConfigError, ParalluxError, RunnerError
from ._handles import Command, Result, env_of
from ._launcher import RECORD_NAME, read_record
from ._protocol import WATCHDOG, Job, LauncherClient
from ._transfer import Transfer

if TYPE_CHECKING:
    from ._engine import Engine
    from ._goal import Goal

T = TypeVar("T")
LAUNCHER_PATH = _prespawn.LAUNCHER_PATH
Launched = tuple[int, Job]  # a launched command: its request id and the job that reports its end
_RUNNER_NUMBERS = itertools.count(1)
KILL_GRACE = 2.0            # seconds between SIGTERM and SIGKILL when a command is stopped
KILL_WAIT = KILL_GRACE + 8  # how long to wait for the launcher to confirm a stopped command has ended


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


class Runner:
    """A place commands run: limits (``max_jobs``), an optional core pool, a workspace and an environment."""

    kind = "local"

    def __init__(self, goal: Goal, name: str, *, workspace: str | None, max_jobs: int | None,
                 env: Mapping[str, str] | None, layout: CoreLayout | None, membind: bool = False) -> None:
        self._goal = goal
        self.name = name
        self.workspace_option = workspace if workspace is not None else "~/parallux"
        self.workspace: str = self.workspace_option
        self.max_jobs_option = max_jobs
        self.max_jobs: int | None = max_jobs
        self.env = dict(env or {})
        self.layout = layout
        self.allocator = CoreAllocator(layout) if layout is not None else None
        self.membind = membind
        self.watchdog = WATCHDOG  # seconds of silence from parallux after which the launcher stops everything
        self.slots: trio.CapacityLimiter | None = None
        self.client: LauncherClient | None = None
        self.facts: dict[str, Any] = {}
        self.alive = False
        self.quarantined: str | None = None  # why the engine took it out of the pool (see Engine)
        self.unexecuted_in_a_row = 0
        self._closing = False
        self.active = 0
        # Commands are marked "<run id>@<runner>.<seq>.<attempt>": a launcher that loses its parallux sweeps
        # its own runner's marks only, never another runner's on the same machine.
        self.mark_scope = f"r{next(_RUNNER_NUMBERS)}"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_calls(cls)  # another kind of runner's public methods are checked like these

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def describe(self) -> str:
        return f"runner {self.name!r}"

    # -- public, main thread ----------------------------------------------------------------------------

    def run(self, command: str | list[str] = opt.MISSING, *extra: Any, **options: Any) -> Command:
        """Submit one command now, pinned to this runner; returns its handle without waiting."""
        if command is opt.MISSING or extra:  # not checked by a wrapper: called once per command
            opt.refuse_positionals(f"{self.name}.run()", command, extra)
        return self._goal._run_pinned(self, command, options)

    def status(self, numa_node: int | None = None) -> RunnerStatus:
        """Live figures: jobs running and free here, and (with a core pool) cores configured and free."""
        return self._status(numa_node)

    def _status(self, numa_node: int | None = None) -> RunnerStatus:
        if opt.numa_node(numa_node) is not None and (self.layout is None or numa_node not in self.layout.nodes):
            raise ConfigError(f"{self.describe()} has no NUMA node {numa_node!r}")
        configured = self.allocator.configured(numa_node) if self.allocator else []
        available = self.allocator.available(numa_node) if self.allocator else []
        limit = self.max_jobs
        return RunnerStatus(
            name=self.name, active_jobs=self.active,
            available_jobs=max(0, limit - self.active) if limit is not None else 0, max_jobs=limit,
            logical_core_count=self.facts.get("logical_cores"), configured_cores=configured,
            configured_core_count=len(configured), available_cores=available,
            available_core_count=len(available), numa_node=numa_node, connected=self.alive,
            quarantined=self.quarantined)

    def active_jobs(self) -> int:
        return self._status().active_jobs

    def available_jobs(self) -> int:
        return self._status().available_jobs

    def logical_core_count(self) -> int | None:
        return self._status().logical_core_count

    def configured_cores(self, numa_node: int | None = None) -> list[int]:
        return self._status(numa_node).configured_cores

    def configured_core_count(self, numa_node: int | None = None) -> int:
        return self._status(numa_node).configured_core_count

    def available_cores(self, numa_node: int | None = None) -> list[int]:
        return self._status(numa_node).available_cores

    def available_core_count(self, numa_node: int | None = None) -> int:
        return self._status(numa_node).available_core_count

    # -- files, main thread (see _transfer) -------------------------------------------------------------

    def put(self, local: str | os.PathLike[str], remote: str | os.PathLike[str]) -> Transfer:
        """Copy a local file or directory tree to this runner, over its launcher; what is already there
        with the same size and mtime is skipped. See docs/reference.md ("Files on runners")."""
        source = _transfer.local_path(local, f"{self.name}.put()")
        target = self._remote_path(_transfer.remote_text(remote, f"{self.name}.put()"))
        if self._goal._engine.dry_run:
            print(f"put {source} -> {self.name}:{target}", flush=True)
            return Transfer()
        return self._in_engine_thread(_transfer.put, self, source, target)

    def get(self, remote: str | os.PathLike[str], local: str | os.PathLike[str]) -> Transfer:
        """Copy a file or directory tree of this runner here (the mirror of :meth:`put`)."""
        source = self._remote_path(_transfer.remote_text(remote, f"{self.name}.get()"))
        target = _transfer.local_path(local, f"{self.name}.get()")
        if self._goal._engine.dry_run:
            print(f"get {self.name}:{source} -> {target}", flush=True)
            return Transfer()
        return self._in_engine_thread(_transfer.get, self, source, target)

    def read_file(self, path: str | os.PathLike[str]) -> bytes:
        """A file of this runner's (a result's stdout, say), read by its launcher; ``b""`` in a dry run."""
        where = self._remote_path(_transfer.remote_text(path, f"{self.name}.read_file()", "path"))
        if self._goal._engine.dry_run:
            return b""
        return self._in_engine_thread(_transfer.read, self, where)

    def _remote_path(self, text: str) -> str:
        """A path on this runner made absolute: relative ones are in its workspace, ``~`` is its home."""
        return _transfer.resolve_remote(text, self.workspace, self.facts.get("home", "~"))

    def _in_engine_thread(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        try:
            return self._goal._engine.call_async(fn, *args)
        except ParalluxError as exc:  # raised in the engine thread: its Trio frames mean nothing to a config
            raise exc.with_traceback(None) from None

    def _records_in(self, work_dirs: list[str]) -> list[dict[str, Any] | None]:
        """The completion records (result.json) in these work dirs, None where there is none (--resume)."""
        return [read_record(posixpath.join(work_dir, RECORD_NAME)) for work_dir in work_dirs]

    # -- lifetime, engine thread ------------------------------------------------------------------------

    @asynccontextmanager
    async def _open_launcher(self) -> AsyncIterator[tuple[trio.abc.SendStream, trio.abc.ReceiveStream]]:
        """The launcher the CLI started early (see ``_prespawn``), or a new one: its stdin and stdout."""
        process = _prespawn.claim()
        if process is None:
            try:
                process = _prespawn.start_launcher()
            except OSError as exc:
                raise RunnerError(f"{self.describe()}: cannot start the launcher: {exc}") from exc
        async with launcher_streams(process) as streams:
            yield streams

    def _plan_facts(self) -> dict[str, Any]:
        """What ``--dry-run`` assumes about the runner's machine, since it starts no launcher."""
        return {"logical_cores": os.cpu_count(), "home": os.path.expanduser("~"), "cwd": os.getcwd(),
                "numactl": "numactl", "cpus": sorted(os.sched_getaffinity(0))}

    async def _serve(self, engine: Engine, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, report readiness, and keep the launcher until the run ends or the connection drops."""
        if engine.dry_run:
            self._configure(self._plan_facts())
            task_status.started()
            return
        async with self._open_launcher() as (send, receive):
            self.client = LauncherClient(send, receive, self.describe(), _write_now(send), self.watchdog)
            async with trio.open_nursery() as nursery:
                facts = await nursery.start(self.client.serve)
                self._configure(facts)
                task_status.started()
            self.alive = False
            if not self._closing:
                self._orphans_left_by_launcher(engine)
            engine.runner_lost(self)

    def _orphans_left_by_launcher(self, engine: Engine) -> None:
        """The launcher died unasked (OOM killer, kill -9): its commands would run on unsupervised. They
        carry this runner's mark, so stop them here -- on this machine; a remote launcher's own watchdog
        and EOF handling cover SSH runners."""
        if self.kind == "local":
            from ._launcher import sweep_marks
            sweep_marks([f"{engine.run_id}@{self.mark_scope}."], signal.SIGKILL, prefix=True)

    def _configure(self, facts: dict[str, Any]) -> None:
        self.facts = facts
        if self.layout is not None and not facts.get("numactl"):
            raise RunnerError(f"{self.describe()} declares a core pool, but numactl is not installed on "
                              f"{facts.get('hostname', 'its machine')}: install it (Debian: apt-get install "
                              f"numactl) or remove core_pool/numa_nodes")
        self._check_cores(facts)
        self.workspace = resolve_workspace(self.workspace_option, facts["home"], facts["cwd"])
        if self.max_jobs is None:
            self.max_jobs = int(facts.get("logical_cores") or 1)
        self.slots = trio.CapacityLimiter(self.max_jobs)
        self.alive = True

    def _check_cores(self, facts: dict[str, Any]) -> None:
        """A core pool may name only CPUs the machine has and lets commands use (its affinity mask): any other
        would fail only when numactl runs, with its usage text, once per command."""
        cpus = facts.get("cpus")
        if cpus is None and facts.get("logical_cores"):  # a launcher that cannot tell its affinity
            cpus = range(int(facts["logical_cores"]))
        if self.layout is None or cpus is None:  # (an SSH runner in a dry run: the remote is not asked)
            return
        missing = sorted(set(self.layout.cores) - set(cpus))
        if missing:
            machine = "this machine" if self.kind == "local" else facts.get("hostname", "its machine")
            raise ConfigError(
                f"{self.describe()}: core_pool/numa_nodes name {_cpus(missing)}, which {machine} does not "
                f"have or does not let parallux use; it has {_cpus(cpus)}")

    async def _close(self) -> None:
        self._closing = True
        if self.client is not None:
            await self.client.quit()

    # -- scheduling hooks (engine thread) ------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        """Whether it may still be given commands: connected and not quarantined."""
        return self.alive and self.quarantined is None

    def _can_take_now(self, command: Command) -> bool:
        if not self.accepting or self.slots is None or self.slots.available_tokens < 1:
            return False
        if self.client is not None and self.client.gone is not None:  # dropped; serve() has not ended yet
            return False
        if self.allocator is None:
            return True
        return self.allocator.could_fit_now(command.threads, command.requested_numa_node, command.requested_cores)

    def _lease_for(self, command: Command) -> Lease | None:
        if self.allocator is None:
            return None
        return self.allocator.try_lease(command.threads, command.requested_numa_node, command.requested_cores)

    # -- execution (engine thread) ----------------------------------------------------------------------

    def _work_dir_of(self, work_relpath: str) -> str:
        return posixpath.normpath(posixpath.join(self.workspace, work_relpath))

    def _request_for(self, engine: Engine, command: Command, lease: Lease | None) -> dict[str, Any]:
        """The launcher request: the command line, wrapped for its cores, and everything it runs with."""
        argv = ["sh", "-c", command.command_text]
        variables = {"PARALLUX_RUNNER": self.name, "PARALLUX_WORK_RELPATH": command.work_relpath,
                     "PARALLUX_WORK_DIR": command.work_dir}
        if lease is not None:
            variables["PARALLUX_CORES"] = format_cores(lease.cores)
            if lease.numa_node is not None:
                variables["PARALLUX_NUMA_NODE"] = str(lease.numa_node)
            argv = self._binding_prefix(lease) + argv
        wrapped = shlex.join(argv)  # command.txt keeps the exact line as run, too
        return {
            "argv": argv, "env": env_of(command.base_env, self.env, command.env, variables),
            "work_dir": command.work_dir, "cwd": command.cwd, "command_text": command.command_text,
            "wrapped": wrapped, "quiet_start": True,
            "mark": f"{engine.run_id}@{self.mark_scope}.{command.seq}.{command.attempt}",
            "record": {"name": command.name, "runner": self.name, "work_relpath": command.work_relpath,
                       "cores": list(command.cores), "numa_node": command.numa_node, "run_id": engine.run_id,
                       "attempt": command.attempt, "threads": command.threads, "inputs": command.inputs,
                       "attempts_before": command.attempts},
        }

    def _binding_prefix(self, lease: Lease) -> list[str]:
        memory = (f"--membind={lease.numa_node}" if self.membind and lease.numa_node is not None
                  else "--localalloc")
        return [self.facts.get("numactl") or "numactl", f"--physcpubind={format_cores(lease.cores)}", memory, "--"]

    def _launch(self, engine: Engine, command: Command, lease: Lease | None) -> Launched:
        """Send the command to the launcher now, in the scheduling step that started it (engine thread)."""
        assert self.client is not None
        return self.client.start(self._request_for(engine, command, lease))

    async def _execute(self, engine: Engine, command: Command, lease: Lease | None,
                       launched: Launched | None) -> Result:
        """Wait for a launched command's end; on a timeout or cancellation stop its process tree first."""
        if launched is None:  # a dry run
            # Virtual time (dry runs use an autojumping clock): every command "takes" one second, and
            # the earlier submitted ends first, so the plan is the same on every dry run.
            await trio.sleep(1 + command.seq * 1e-6)
            return Result(command, "planned")
        job_id, job = launched
        try:
            if command.timeout:
                with trio.move_on_after(command.timeout) as deadline:
                    await job.ended.wait()
                if deadline.cancelled_caught:
                    # Its exit event then says "timeout" -- or, if it ended by itself just as time ran out,
                    # how it ended.
                    await self._stop(job_id, job, KILL_GRACE, "timeout")
            else:
                await job.ended.wait()
        except BaseException:
            await self._stop(job_id, job, 0 if engine.hard_stop else KILL_GRACE, "cancelled")
            raise
        return self._result_of(command, job.exit_event)

    async def _stop(self, job_id: int, job: Any, grace: float, reason: str) -> None:
        assert self.client is not None
        with trio.CancelScope(shield=True):
            self.client.kill(job_id, grace, reason)
            with trio.move_on_after(grace + KILL_WAIT):
                await job.ended.wait()
            if not job.ended.is_set():
                self.client.forget(job_id)

    def _result_of(self, command: Command, event: dict[str, Any] | None) -> Result:
        if event is None:
            assert self.client is not None
            return Result(command, "error", error=self.client.gone or "the launcher did not report an exit")
        if event["ev"] == "error":
            return Result(command, "error", error=event.get("message"), kind=event.get("reason"))
        return Result(command, event["status"], returncode=event["returncode"], start_time=event["start"],
                      end_time=event["end"], signal=event.get("signal"),
                      user_seconds=event.get("user_seconds"), system_seconds=event.get("system_seconds"),
                      max_rss_kb=event.get("max_rss_kb"), stderr_tail_text=event.get("stderr_tail"))


def _cpus(cores: Iterable[int]) -> str:
    """``CPUs 0-3,8`` (``CPU 5``): ranges, because a missing pool of 64 cores should not take 64 numbers."""
    spans: list[list[int]] = []
    for core in sorted(cores):
        if spans and core == spans[-1][1] + 1:
            spans[-1][1] = core
        else:
            spans.append([core, core])
    text = ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
    return f"CPU{'s' if len(spans) > 1 or spans and spans[0][0] != spans[0][1] else ''} {text or 'none'}"


def _check_calls(cls: type) -> None:
    """Every public method of a runner refuses bad arguments with a ConfigError naming ``<runner>.<method>()``
    (see ``_options.checked``); ``run()`` checks its own, being called once per command."""
    def where(method: str) -> Callable[[tuple[Any, ...]], str]:
        return lambda args: f"{getattr(args[0], 'name', 'runner') if args else 'runner'}.{method}()"
    opt.check_public_methods(cls, where, exempt=("run",))


_check_calls(Runner)


@asynccontextmanager
async def launcher_streams(popen: subprocess.Popen[bytes]
                           ) -> AsyncIterator[tuple[trio.abc.SendStream, trio.abc.ReceiveStream]]:
    """Trio streams over a launcher child; on exit, EOF to it, then wait for it (or kill it)."""
    assert popen.stdin is not None and popen.stdout is not None
    send = trio.lowlevel.FdStream(os.dup(popen.stdin.fileno()))
    receive = trio.lowlevel.FdStream(os.dup(popen.stdout.fileno()))
    popen.stdin.close()
    popen.stdout.close()
    try:
        yield send, receive
    finally:
        with trio.CancelScope(shield=True):
            await send.aclose()  # EOF: the launcher stops whatever is left and exits
            if not await wait_for_exit(popen, KILL_WAIT):
                popen.kill()
                popen.wait()
            await receive.aclose()


async def wait_for_exit(popen: subprocess.Popen[bytes], seconds: float) -> bool:
    """Whether the child has exited, waiting up to ``seconds``. Polled from 0.5 ms up: a child told to end
    usually does within milliseconds, and a fixed step would add itself to every end of a run."""
    with trio.move_on_after(seconds):
        pause = 0.0005
        while popen.poll() is None:
            await trio.sleep(pause)
            pause = min(pause * 2, 0.02)
    return popen.poll() is not None


def _write_now(stream: trio.abc.SendStream) -> Callable[[bytes], int] | None:
    """A way to write to the stream without awaiting, if it has one (see ``LauncherClient.post``)."""
    if isinstance(stream, trio.lowlevel.FdStream):
        fd = stream.fileno()  # non-blocking (FdStream made it so): a full pipe raises BlockingIOError
        return lambda data: os.write(fd, data)
    return getattr(stream, "write_now", None)


def resolve_workspace(workspace: str, home: str, cwd: str) -> str:
    """A workspace as an absolute path on the runner: ``~`` is its home, relative paths its start dir."""
    if workspace == "~" or workspace.startswith("~/"):
        workspace = home + workspace[1:]
    return posixpath.normpath(posixpath.join(cwd, workspace))
