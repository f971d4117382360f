"""A seat: one runner as the engine sees it -- its transport and launcher client, its slots and core
allocator, its workspace and the facts its launcher reported.

The public :class:`~parallux._runner.Runner` is the config's handle on a seat, and reads only what the seat
publishes (``view``, ``load``: ``_runner_view``); the scheduler sees seats through its ``Place`` protocol; the
transport beneath knows nothing but how to reach the launcher (a ``Pipe``). Whether another launcher follows
one that ended (``Relaunch``) and the batch allocation the launcher may live in (``Batch``) are the seat's,
given by the pool (``_lifeline``).
"""

from __future__ import annotations

import functools
import itertools
import os
import posixpath
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import trio

from .._allocator import ResourceAllocator
from .._cores import CoreAllocator, CoreLayout, format_cores
from .._gpus import gpu_hello
from .._errors import ConfigError, ParalluxError, RunnerError, plain_error
from .._handles import Command, Result, Settled
from .._launcher import MACHINE_ROOT_VAR, RECORD_NAME
from .._lifeline import NO_RELAUNCH, Batch, Relaunch
from .._protocol import LauncherClient, outcome_of, read_records
from .._resources import Lease, offer_of, request_of
from .._runner_view import Load, RunnerView, view_of
from .._status import Status
from .._transports._base import Pipe, Transport
from .._turn import NO_TURN, Turn
from ._launched import Launched, LauncherEnd
from ._request import Requests
from ._reattach import resumable, stay_attached

if TYPE_CHECKING:
    from ._machines import Machine, Machines

KILL_GRACE = 2.0            # seconds between SIGTERM and SIGKILL when a command is stopped
KILL_WAIT = KILL_GRACE + 8  # how long to wait for the launcher to confirm a stopped command has ended
RECORDS_PER_REQUEST = 256   # completion records asked of a launcher at once (--resume)
BENCH_SPAWN_VAR = "PARALLUX_BENCH_SPAWN"  # see bench_mode
RECORDS_WAIT = 600.0        # how long --resume waits for a pending batch allocation to read the records on its nodes
_SEAT_NUMBERS = itertools.count(1)


class Seat:
    """Limits (``max_jobs``), an optional core pool, a workspace and an environment, on a transport."""

    def __init__(self, name: str, transport: Transport, options: Mapping[str, Any], *,
                 relaunch: Relaunch = NO_RELAUNCH, batch: Batch | None = None, time_limit: float | None = None
                 ) -> None:
        """``options``: the runner's, checked (``_runner_options.RUNNER.checked``: ``layout`` is its core pool
        and NUMA nodes, parsed)."""
        workspace, max_jobs, layout = options["workspace"], options["max_jobs"], options["layout"]
        self.name = name
        self.transport = transport
        self.relaunch = relaunch  # whether a launcher that ended is followed by another
        self.batch = batch  # the allocation its launcher lives in: it comes later, and may come again
        self.time_limit = time_limit  # the longest any command may run there (a batch's), checked at registration
        self.pipe: Pipe | None = None  # its current (or last) launcher's
        self.workspace_option = workspace if workspace is not None else "~/parallux"
        self.workspace: str = self.workspace_option
        self.settled = Settled(self.workspace)
        self.max_jobs_option = max_jobs
        self.max_jobs: int | None = max_jobs
        self.env = dict(options["env"] or {})
        self.requests = Requests(self)  # what its commands' run requests carry
        self.layout: CoreLayout | None = layout
        self.allocator = CoreAllocator(layout, options["whole_cores"]) if layout is not None else None
        self.gpus_option, self.memory_pool = options["gpus"], options["memory_pool"]  # (None: detect its GPUs;
        # its machine's memory less 10%)
        self.resources = ResourceAllocator(self.allocator, offer_of({}, self.gpus_option, self.memory_pool))
        self.membind: bool = options["membind"]
        self.whole_cores: bool = options["whole_cores"]
        self.machines: Machines | None = None  # the run's (the engine sets it): which machine its launcher is on
        self.turn: Turn = NO_TURN  # the engine's (it sets it): its launcher client's reads are turns (_turn)
        self.machine: Machine | None = None
        self.home_cpus: list[int] | None = None  # where its launcher was moved, off the machine's pools
        self.handle: Any = None  # the config's Runner for this seat (what a setScheduler function gets)
        self.load = Load()  # the commands running there: its slots are max_jobs less these
        self.client: LauncherClient | None = None
        self.facts: dict[str, Any] = {}
        self.alive = False
        self.reconnecting: str | None = None  # why its connection is down while it is reconnected (_reattach)
        self.reattaching: trio.CancelScope | None = None
        self.tell: Callable[..., None] = lambda *args, **details: None  # what befalls it, for the observers
        self.quarantined: str | None = None  # why the engine took it out of the pool (see _lifecycle)
        self.unexecuted_in_a_row = 0
        self.closing = False
        self.end = LauncherEnd(None, "its machine")  # how its current launcher went away, once it did
        self.restart_count = 0  # new launchers started after one died (a local runner's)
        # Commands are marked "<run id>@<seat>.<seq>.<attempt>": a launcher that loses its parallux sweeps
        # its own runner's marks only, never another runner's on the same machine.
        self.mark_scope = f"r{next(_SEAT_NUMBERS)}"
        self.view: RunnerView = view_of(self)  # what the main thread reads of it (see publish)
        if batch is not None:
            batch.watch(self.publish)  # (its job and nodes, what it waits for)

    def publish(self) -> None:
        """A new view of it for the main thread, in one assignment: on its events, never per command."""
        self.view = view_of(self)

    def describe(self) -> str:
        return self.transport.describe(self.name)

    @property
    def host(self) -> str | None:
        """The machine its commands run on, as results name it."""
        return (self.pipe is not None and self.pipe.host) or self.facts.get("hostname")

    # -- lifetime ----------------------------------------------------------------------------------------

    async def serve(self, run_id: str, changed: Callable[[], None],
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                    tell: Callable[..., None] | None = None) -> None:
        """Reach the launcher, report readiness, and keep it until the run ends or the connection drops;
        then ``changed()``, so that what can run nowhere else ends.

        A seat in a batch allocation is ready at once and reaches its launcher later, maybe more than once
        (a new allocation after the last one ended): ``changed()`` then also follows each arrival, so that
        the queued commands start. A seat that restarts a launcher that died (a local runner's) goes the same
        way after its first launcher, and ``tell("launcher_restarted", runner, reason=, restarts=)`` hears of
        each new one; whether another may come is its ``relaunch``'s (``expected``). A connection that drops
        under a launcher that lives on is reconnected (_reattach)."""
        self.tell = tell or self.tell
        ended: str | None = None  # how the last launcher ended
        if self.batch is not None:
            task_status.started()
        else:  # the first launcher: not reaching it is the runner's error, for the config to report
            ended = await self._serve_launcher(run_id, changed, task_status)
        while self.relaunch.expected and not self.closing:
            if ended is not None and self.batch is None:  # (a batch node's next launcher is no restart)
                self.restart_count += 1
                self.tell("launcher_restarted", self.handle, reason=ended, restarts=self.restart_count)
            try:
                ended = await self._serve_launcher(run_id, changed, trio.TASK_STATUS_IGNORED, arrived=changed)
            except (ParalluxError, BaseExceptionGroup) as exc:  # this launcher could not start or was refused
                # (its node lacks the core pool's CPUs): its relaunch says whether another may come
                error = plain_error(exc)
                if not isinstance(error, ParalluxError):
                    raise
                self.alive = False
                said = str(error).removeprefix(f"{self.describe()}: ")
                # A new local launcher killed as it started died like one killed later: the same words.
                ended = (self.batch is None and self.end.death()) or said
                self.relaunch.failed(ended)
                self.publish()
                changed()

    async def _serve_launcher(self, run_id: str, lost: Callable[[], None], task_status: trio.TaskStatus[None],
                              arrived: Callable[[], None] | None = None) -> str | None:
        """One launcher, from its start to its end; how it ended (None: the run closed it)."""
        self.end = LauncherEnd(None, self.host or "its machine")  # (a new one's: the last one's host)
        async with self.transport.open(self.name) as pipe:
            self.pipe = pipe
            self.end = LauncherEnd(pipe, self.end.host)
            self.publish()  # (its host and login: a batch node's are known now)
            self.client = LauncherClient(pipe.send, pipe.receive, self.describe(), pipe.watchdog,
                                         {**pipe.hello, **machine_root(self.env), **bench_mode(),
                                          **gpu_hello(self.gpus_option, self.env)}, self.turn)
            self.client.may_resume = functools.partial(resumable, self)
            async with trio.open_nursery() as nursery:
                facts = await nursery.start(self.client.serve)
                self.configure(facts)
                self.end = LauncherEnd(pipe, self.host or "its machine")
                if facts.get("attach_error"):  # (its commands end at once when the connection drops)
                    self.tell("reattach_unavailable", self.handle, reason=facts["attach_error"])
                task_status.started()
                if arrived is not None:
                    arrived()
            await stay_attached(self, lost, self.tell)
            self.alive = False
            ended = None
            if not self.closing:  # (what "no runner left" says; the words its commands' results have, too)
                said = self.client.stopped
                ended = self.client.gone = self.end.death(said) or self.client.gone or "the launcher exited"
                pipe.ended(f"{run_id}@{self.mark_scope}.")
                self.relaunch.died(ended)
            self.publish()
            lost()
        return ended

    async def wait_up(self, reconnected_only: bool = False) -> None:
        """Return once its launcher is connected (a batch node's, when its allocation runs; an SSH runner's,
        once reconnected). ``reconnected_only``: wait only for a runner whose connection dropped."""
        down = self.reconnecting is not None or self.client is not None and self.client.down is not None
        if reconnected_only and not down:
            return
        batch = self.batch  # (someone waiting for its launcher: a batch allocation is reached even with no work)
        if batch is not None:
            batch.want(1)
        try:
            while (down or not self.alive) and (self.relaunch.expected or down) and not self.closing:
                await trio.sleep(0.05)
                down = self.reconnecting is not None or self.client is not None and self.client.down is not None
        finally:
            if batch is not None:
                batch.want(-1)
        if not self.alive:
            waiting = self.relaunch.waiting
            raise RunnerError(f"{self.describe()}: not connected" + (f" ({waiting})" if waiting else ""))

    def configure(self, facts: dict[str, Any]) -> None:
        if self.pipe is not None:
            self.pipe.said_hello()
        if self.layout is not None and not facts.get("numactl"):
            raise RunnerError(f"{self.describe()} declares a core pool, but numactl is not installed on "
                              f"{facts.get('hostname', 'its machine')}: install it (Debian: apt-get install "
                              f"numactl) or remove core_pool/numa_nodes")
        self._check_cores(facts)
        self.facts = facts
        self.workspace = resolve_workspace(self.workspace_option, facts["home"], facts["cwd"])
        self.settled = Settled(self.workspace)  # what its commands keep of their work dirs once they ended
        self.max_jobs = self.max_jobs_option if self.max_jobs_option is not None else \
            self.batch.cpus(facts) if self.batch is not None else int(facts.get("logical_cores") or 1)
        self.home_cpus = None  # (a new launcher runs where it was started)
        self.resources.offer = offer_of(facts, self.gpus_option, self.memory_pool)
        if self.machines is not None:
            self.machines.join(self)
        self.alive = True
        self.publish()  # connected, in the one view that has its workspace, max_jobs and facts

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
            machine = "this machine" if self.transport.kind == "local" else \
                (self.pipe is not None and self.pipe.host) or facts.get("hostname", "its machine")
            raise ConfigError(
                f"{self.describe()}: core_pool/numa_nodes name {cpu_list(missing)}, which {machine} does not "
                f"have or does not let parallux use; it has {cpu_list(cpus)}")

    async def close(self, hard: bool = False) -> None:
        self.closing = True
        if self.reattaching is not None:  # (its launcher, not reached, stops everything at the end of its grace)
            self.reattaching.cancel()
        if self.client is not None:
            await self.client.quit(0 if hard else None)
        await self.transport.close()

    # -- scheduling (the scheduler's Place protocol) -----------------------------------------------------

    @property
    def accepting(self) -> bool:
        """Whether it may still be given commands: connected (or its launcher still to come, as a pending
        batch allocation's) and not quarantined."""
        return (self.alive or self.relaunch.expected or self.reconnecting is not None) and self.quarantined is None

    def can_take_now(self, command: Command) -> bool:
        # (a launcher reached again, a new allocation: the last one's commands still hold their slots)
        if not self.alive or self.quarantined is not None or self.load.active >= (self.max_jobs or 0):
            return False
        if self.client is not None and self.client.gone is not None:  # dropped; serve() has not ended yet
            return False
        if command.timeout and self.batch is not None and (left := self.batch.time_left()) is not None \
                and left < command.timeout:
            return False  # the allocation would end before its timeout: it waits for the next one
        if self.resources.needs(command) and not self.resources.could_fit_now(request_of(command)):
            return False  # (a request its node can never meet raises here, in the scheduling that follows the
            # node's arrival, which refuses the node: so before the machine's hold is asked)
        return self.machine is None or not self.machine.holds  # held: its environment is read, its probes run

    def lease_for(self, command: Command) -> Lease | None:
        if not self.resources.needs(command):  # (a million plain commands: no lock taken, nothing made)
            return None
        return self.resources.try_lease(request_of(command))

    # -- commands --------------------------------------------------------------------------------------

    def work_dir_of(self, work_relpath: str) -> str:
        workspace = self.workspace  # (resolved: normalised, as a registered work_relpath is: a join is enough)
        if workspace == "/" or "/." in work_relpath or "//" in work_relpath or work_relpath[:1] in "./" \
                or work_relpath.endswith("/"):
            return posixpath.normpath(posixpath.join(workspace, work_relpath))
        return f"{workspace}/{work_relpath}"

    def argv_for(self, command: Command, lease: Lease | None) -> list[str]:
        """The command line as it runs: ``sh -c``, behind ``numactl`` with a core lease."""
        argv = ["sh", "-c", command.command_text]
        return self._binding_prefix(lease) + argv if lease is not None and lease.core_lease is not None else argv

    def launch(self, run_id: str, command: Command, lease: Lease | None, argv: list[str]) -> Launched:
        """Send the command to the launcher now, in the scheduling step that started it, with everything it
        runs with."""
        assert self.client is not None
        job_id, job = self.requests.send(run_id, command, lease, argv)
        return Launched(job_id, job, self.client, self.end)

    def _binding_prefix(self, lease: Lease) -> list[str]:
        memory = (f"--membind={lease.numa_node}" if self.membind and lease.numa_node is not None
                  else "--localalloc")
        return [self.facts.get("numactl") or "numactl", f"--physcpubind={format_cores(lease.cores)}", memory, "--"]

    async def stop(self, launched: Launched, grace: float, reason: str) -> None:
        """Stop a launched command's process tree (TERM, grace, KILL) and wait for the launcher to say so --
        unless its connection is down: the kill then goes if it comes back, and the launcher, which otherwise
        waits for it, stops everything at the end of its grace; a Ctrl-C must not wait for either."""
        with trio.CancelScope(shield=True):
            launched.client.kill(launched.id, grace, reason)
            with trio.move_on_after(0 if launched.client.down else grace + KILL_WAIT):
                await launched.job.ended.wait()
            if not launched.job.done:
                launched.client.forget(launched.id)

    def result_of(self, command: Command, launched: Launched) -> Result:
        """Its result, from what its launcher said -- or from how that launcher went away."""
        client, end, event = launched.client, launched.end, launched.job.exit_event
        if event is None:
            why = end.lost_reason() or end.death() or client.gone or \
                (f"no word from the launcher: {client.down}" if client.down else "the launcher did not report an exit")
            return Result(command, Status.ERROR, error=why, kind="lost")
        if event["ev"] == "exit" and "stopped" not in event:  # (how nearly every command ends)
            self.relaunch.completed()  # (launchers that die at once every time are restarted 2 times)
            return Result._of_exit(command, event)
        outcome = outcome_of(event)
        if outcome.get("kind") == "terminated":  # the launcher is ending (SIGTERM): nothing more goes there
            client.gone = client.gone or outcome["error"]
            outcome["error"] = end.lost_reason() or outcome["error"]
        elif event.get("stopped"):  # the launcher ended under it (its guardian killed, its input closed, a
            # signal), which nobody asked for -- a cancel, a timeout or the run's end would have said so first
            outcome.update(status=Status.ERROR, kind="died", error=end.death(event["stopped"]))
            client.gone = outcome["error"]  # nothing more goes there
        elif event["ev"] == "exit":
            self.relaunch.completed()  # (launchers that die at once every time are restarted 2 times)
        return Result(command, **outcome)

    async def records(self, work_dirs: list[str]) -> list[dict[str, Any] | None]:
        """The completion records in these work dirs, read by the launcher RECORDS_PER_REQUEST to a request,
        the requests all in flight at once: a resume of thousands costs a few round trips."""
        if self.batch is not None and not self.alive:  # (a pending allocation: its nodes hold the records)
            with trio.move_on_after(RECORDS_WAIT):
                await self.wait_up()
        if self.client is None or not self.alive:
            return [None] * len(work_dirs)
        paths = [posixpath.join(work_dir, RECORD_NAME) for work_dir in work_dirs]
        chunks = [paths[i:i + RECORDS_PER_REQUEST] for i in range(0, len(paths), RECORDS_PER_REQUEST)]
        answers: list[list[dict[str, Any] | None]] = [[] for _ in chunks]

        async def ask(index: int, client: LauncherClient) -> None:
            answers[index] = await read_records(client, chunks[index], self.workspace)

        async with trio.open_nursery() as nursery:
            for index in range(len(chunks)):
                nursery.start_soon(ask, index, self.client)
        return [record for answer in answers for record in answer]


def machine_root(env: Mapping[str, str]) -> dict[str, str]:
    """Where a launcher reads its machine's facts (the hello's ``machine_root``): a test's fake tree, named in
    the runner's env= or in parallux's own environment."""
    root = env.get(MACHINE_ROOT_VAR) or os.environ.get(MACHINE_ROOT_VAR)
    return {"machine_root": root} if root else {}


def bench_mode() -> dict[str, str]:
    """Benchmarking only: ``PARALLUX_BENCH_SPAWN=none`` (or ``files``) in parallux's environment makes its
    launchers answer every command at once without starting a process (``none``: nor touching a file), so
    that bench/dispatch.py can tell the engine's and the protocol's time per command from process creation's."""
    mode = os.environ.get(BENCH_SPAWN_VAR)
    return {"bench": mode} if mode else {}


def resolve_workspace(workspace: str, home: str, cwd: str) -> str:
    """A workspace as an absolute path on the runner: ``~`` is its home, relative paths its start dir."""
    if workspace == "~" or workspace.startswith("~/"):
        workspace = home + workspace[1:]
    return posixpath.normpath(posixpath.join(cwd, workspace))


def cpu_list(cores: Iterable[int]) -> str:
    """``CPUs 0-3,8`` (``CPU 5``): ranges, because a missing pool of 64 cores should not take 64 numbers."""
    spans: list[list[int]] = []
    for core in sorted(cores):
        if spans and core == spans[-1][1] + 1:
            spans[-1][1] = core
        else:
            spans.append([core, core])
    text = ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
    return f"CPU{'s' if len(spans) > 1 or spans and spans[0][0] != spans[0][1] else ''} {text or 'none'}"
