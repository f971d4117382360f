"""The run log: one JSON line per command event, on the machine that runs parallux, kept per config.

Written as events happen and flushed every 50 ms (and at the end, also after Ctrl-C or SIGTERM), so an
interrupted run leaves a complete record of every command that finished; a SIGKILL loses at most the last
50 ms. The schema is in docs/reference.md ("Run log").

Each run's log is kept in the history of its config (the layout is drawn in ``_statedir``), which the
views (``parallux runs``, ``show``, ...; ``_views``) read back.

A run that started no command (a config error) is kept but never becomes ``latest``. A run log that cannot be
written (disk full, directory removed) costs the run nothing but the log: one warning, and the run goes on.
"""

from __future__ import annotations

import os
import socket
import stat
import sys
import time
from typing import Any, Callable

from ._handles import Command, Result
from ._jsonline import dumps_line
from ._result import figures
from ._runner_options import RUNNER
from ._statedir import LATEST, config_dir, default_log_dir
from ._version import __version__

SCHEMA_VERSION = 2
LOGGED = RUNNER.flagged("log")  # a runner's options its ``runner`` event gives (name, workspace, max_jobs, pool)
FLUSH_AT = 256  # records buffered before they are written, whenever the next periodic flush comes


class RunLog:
    """An observer of engine events that appends them to the run's log file.

    ``path`` is where the log goes (``--log FILE``), or None for the config's history directory; either way
    the run is listed in the history (a symlink there points to a log written elsewhere).
    """

    def __init__(self, path: str | None, run_id: str, config: str, root: str | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        self.run_id = run_id
        self.root = root or default_log_dir()
        self.history_dir = config_dir(config, self.root)
        self.history_entry = os.path.join(self.history_dir, f"{run_id}.jsonl")
        self.path = os.path.abspath(path) if path else self.history_entry
        self.error: str | None = None  # why the log stopped being written, once it did
        self._warn = warn or _warn_on_stderr
        self._fd: int | None = None
        # The records since the last write, encoded one after another into one buffer (orjson's results kept
        # alive by the hundred cost 2 us each more than one appended and dropped), and the starts not written
        # yet (see __call__): (seq, attempt) -> (where in the buffer, when, the command).
        self._buffer = bytearray()
        self._buffered = 0
        self._starting: dict[tuple[int, int], tuple[int, float, Command]] = {}
        self._runners_logged: set[str] = set()
        self._latest_linked = False

    # -- opening -------------------------------------------------------------------------------------------

    def open(self, run_id: str, config: str, argv: list[str], provenance: dict[str, Any] | None = None) -> None:
        """Create the log and write ``run_started`` (with ``provenance``: the config's ``config_sha256`` and
        ``git``); raises OSError when the log cannot be created at all."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        # Buffered here; the engine calls flush() every 50 ms: a few writes a second instead of one per event.
        # A plain descriptor, not a file object, so that a failed write leaves no buffer that a later close
        # (or the garbage collector) would try to write again.
        self._fd, path = create_log(self.path, run_id)
        if path != self.path:
            self._warn(f"parallux: {self.path} is not empty (another run's log?): the log of run {run_id} "
                       f"is {path}")
            self.path = path
        self._write({"event": "run_started", "schema": SCHEMA_VERSION, "run_id": run_id,
                     "config": os.path.abspath(config), "argv": argv, "time": time.time(), "pid": os.getpid(),
                     "host": socket.gethostname(), "python": sys.version.split()[0], "parallux": __version__,
                     "cwd": os.getcwd(), "log": self.path, **(provenance or {})})
        self.flush()
        self._enter_history()

    def _enter_history(self) -> None:
        """A log written elsewhere (``--log FILE``) is listed in the history by a symlink to it."""
        if self.path == self.history_entry:
            return
        try:
            os.makedirs(self.history_dir, exist_ok=True)
            os.symlink(self.path, self.history_entry)
        except OSError:
            pass  # the history is a convenience: ``parallux show FILE`` still reads the log itself

    def _link_latest(self) -> None:
        """Called when the run's first command starts: a run that starts none never becomes ``latest``."""
        self._latest_linked = True
        for directory in (self.root, self.history_dir):
            target = os.path.relpath(self.history_entry, directory)
            _replace_symlink(target, os.path.join(directory, LATEST))

    # -- events (engine thread) -------------------------------------------------------------------------------

    def __call__(self, event: str, command: Command, **details: Any) -> None:
        if self._fd is None:
            return
        if event == "queued":
            self._write(queued_record(command, time.time()))
        elif event == "started":
            self._started(command)
        else:
            self._ended(event, command, details.get("result"))

    def started_all(self, items: list[tuple[Command, dict[str, Any]]]) -> None:
        """``started`` for commands started in one step (see ``Observers.hold``)."""
        if self._fd is not None:
            for command, _ in items:
                self._started(command)

    def finished_all(self, items: list[tuple[Command, dict[str, Any]]]) -> None:
        """``finished`` for commands settled in one step (see ``Observers.hold``)."""
        if self._fd is not None:
            for command, details in items:
                self._ended("finished", command, details.get("result"))

    def _note_runner(self, command: Command) -> None:
        """Its runner's record, before the first record of a command there."""
        runner = command.runner
        if runner is not None and runner.name not in self._runners_logged:
            self._log_runner(runner)

    def _started(self, command: Command) -> None:
        self._note_runner(command)
        # Written at the next flush, if the attempt is still running then: one that ended before has every
        # field of it in its end's record (and the views read starts from those).
        key = (command.seq, command.attempt)
        self._starting.pop(key, None)  # (an attempt starts once; if not, its last start is the one kept)
        self._starting[key] = (len(self._buffer), time.time(), command)  # (in the buffer's order)
        if not self._latest_linked:
            self._link_latest()

    def _ended(self, event: str, command: Command, result: Result | None) -> None:
        """An attempt's end (``retrying``, ``finished``), or a ``quarantined`` runner."""
        self._note_runner(command)
        if self._starting:
            self._starting.pop((command.seq, command.attempt), None)
        record = where_record(event, time.time(), command)
        if result is not None and result._more is None and result._handle is command and result.run_id == self.run_id:
            plain_outcome(record, result)  # (how nearly every attempt ends: nothing of its own to look up)
        elif result is not None:
            record.update(outcome(result))
            if result.resumed and command.bench is not None:  # (a resumed command has no queued record)
                record.update(bench=command.bench.work_relpath, repetition=command.repetition)
            if result.resumed and command.after:
                record["after"] = dependencies(command)
            if record.get("from_run") == self.run_id:
                del record["from_run"]  # only an earlier run's is news (a resumed command)
        self._write(record)

    def queued_all(self, items: list[tuple[Command, dict[str, Any]]]) -> None:
        """``queued`` for each of a group's commands (see ``Observers.queued``)."""
        if self._fd is None:
            return
        when = time.time()
        for command, _ in items:
            self._write(queued_record(command, when))

    def log(self, record: dict[str, Any]) -> None:
        """A record about no one command: a ``benchmark``, the ``order`` (engine thread, as every event)."""
        self._write(record)

    def runner_event(self, event: str, runner: Any, **details: Any) -> None:
        """What befell a runner (``launcher_restarted``: ``reason``, ``restarts``), with its name and host."""
        if self._fd is None:
            return
        if runner.name not in self._runners_logged:
            self._log_runner(runner)
        self._write({"event": event, "time": time.time(), "runner": runner.name, "host": _host_of(runner),
                     **details})

    def _log_runner(self, runner: Any) -> None:
        self._runners_logged.add(runner.name)
        self._write(runner_record(runner))

    def log_runners(self, runners: list[Any]) -> None:
        """The pool's runners that ran nothing (so never appeared in an event), at the end of the run."""
        for runner in runners:
            if self._fd is not None and runner.name not in self._runners_logged:
                self._log_runner(runner)

    # -- writing ------------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write out what is buffered (the engine calls this every few tens of milliseconds)."""
        if self._fd is None or not (self._buffer or self._starting):
            return
        buffer, self._buffer, self._buffered = self._buffer, bytearray(), 0
        if self._starting:  # (attempts still running: their ``started`` records, each where it started)
            parts, at = [], 0
            for offset, when, command in self._starting.values():
                parts += (buffer[at:offset], dumps_line(where_record("started", when, command)))
                at = offset
            parts.append(buffer[at:])
            self._starting.clear()
            data = b"".join(parts)
        else:
            data = buffer
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self._stop(exc)

    def close(self, summary: dict[str, Any]) -> None:
        if self._fd is None:
            return
        self._write({"event": "run_finished", "time": time.time(), **summary})
        self.flush()
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError as exc:
                self._stop(exc)
            self._fd = None

    def _write(self, record: dict[str, Any]) -> None:
        if self._fd is not None:
            self._buffer += dumps_line(record)
            self._buffered += 1
            if self._buffered >= FLUSH_AT:  # (a group of a million queued at once is not a million lines
                self.flush()                    # in memory until the next flush)

    def _stop(self, exc: OSError) -> None:
        """The log cannot be written (disk full, removed): say so once, drop the log, let the run go on."""
        self.error = exc.strerror or str(exc)
        fd, self._fd = self._fd, None
        self._buffer, self._buffered = bytearray(), 0
        self._starting.clear()
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
        self._warn(f"parallux: cannot write the run log {self.path}: {self.error}; the run goes on without it")


def create_log(path: str, run_id: str) -> tuple[int, str]:
    """A file for this run's log alone, open to append: ``path`` when it is new or an empty file, else a name
    of its own beside it, ``<stem>.<run id>.jsonl``. A log never takes a second run (the runs would merge: a
    reader could not tell their records apart), nothing is overwritten, and no symbolic link is followed."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644), path
    except FileExistsError:
        pass
    try:
        found = os.lstat(path)
        # an empty file made for it (mktemp, touch) by this user: another user's, planted in a shared
        # directory, would receive the log (the kernel's protected_regular refuses it too); /dev/null keeps
        # nothing, so it holds no other run
        if (stat.S_ISREG(found.st_mode) and found.st_size == 0 and found.st_uid == os.geteuid()) \
                or stat.S_ISCHR(found.st_mode):
            fd = os.open(path, flags | os.O_NONBLOCK)  # (a FIFO swapped in meanwhile must not block)
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) == (found.st_dev, found.st_ino):
                os.set_blocking(fd, True)  # (a terminal given as the log is written as usual)
                return fd, path
            os.close(fd)
    except OSError:
        pass
    stem, extension = os.path.splitext(path)
    own = f"{stem}.{run_id}{extension or '.jsonl'}"
    return os.open(own, flags | os.O_CREAT | os.O_EXCL, 0o644), own


def queued_record(command: Command, when: float) -> dict[str, Any]:
    record = {"event": "queued", "time": when, "seq": command.seq, "name": command.name,
              "command": command.command_text, "work_relpath": command.work_relpath,
              "work_generated": command.work_generated}  # (what `parallux clean` may remove)
    if command.bench is not None:
        record.update(bench=command.bench.work_relpath, repetition=command.repetition)
    if command.after:
        record["after"] = dependencies(command)
    return record


def where_record(event: str, when: float, command: Command) -> dict[str, Any]:
    """An attempt's record: the ``started`` fields (where it runs), which its end's record begins with."""
    runner = command.runner
    record = {"event": event, "time": when, "seq": command.seq, "name": command.name,
              "runner": None if runner is None else runner.name, "host": command.host or _host_of(runner),
              "work_dir": command.work_dir, "cores": list(command.cores), "numa_node": command.numa_node,
              "attempt": command.attempt}
    if command.gpus:  # (few commands lease GPUs: the others' records say nothing of them)
        record["gpus"] = list(command.gpus)
    return record


def plain_outcome(record: dict[str, Any], result: Result) -> None:
    """``record.update(outcome(result))`` for a result of this run with nothing of its own but its status, exit
    status and figures (no error, signal, stderr tail, metrics; its runner and work dir its handle's, which
    ``record`` has already)."""
    start, end, user, system, rss = figures(result)
    record["status"], record["returncode"], record["start"], record["end"] = result.status, result.returncode, start, end
    record["duration"] = None if start is None or end is None else end - start
    record["user_seconds"], record["system_seconds"], record["max_rss_kb"] = user, system, rss
    record["signal"], record["error"], record["resumed"] = None, None, False
    memory = result.memory
    if memory is not None:
        record["memory_limit"] = memory


def outcome(result: Result) -> dict[str, Any]:
    start, end, user, system, rss = figures(result)
    fields = {"status": result.status, "returncode": result.returncode, "start": start, "end": end,
              "duration": None if start is None or end is None else end - start, "user_seconds": user,
              "system_seconds": system, "max_rss_kb": rss, "signal": result.signal,
              "error": result.error, "resumed": result.resumed, "runner": result.runner_name,
              "work_dir": result.work_dir}
    if getattr(result, "memory", None) is not None:
        fields["memory_limit"] = result.memory
    # Filled in by the launcher where it reports them (the end of stderr with the exit event; the run that
    # produced a resumed record): read as attributes, never by reading files here on the engine thread.
    tail = getattr(result, "stderr_tail_text", None)
    if tail and result.status != "ok":
        fields["stderr_tail"] = tail if isinstance(tail, str) else bytes(tail).decode("utf-8", "replace")
    metrics = getattr(result, "metrics", None)
    if metrics:
        fields["metrics"] = metrics
    origin = getattr(result, "run_id", None)
    if origin is not None:
        fields["from_run"] = origin
    return fields


def dependencies(command: Command) -> list[dict[str, Any]]:
    """A command's ``after=``, as the log gives it: each dependency's seq and work_relpath."""
    return [{"seq": dependency.seq, "work_relpath": dependency.work_relpath} for dependency in command.after]


def runner_record(runner: Any) -> dict[str, Any]:
    """What the views need about a runner: where it is, how many slots, which cores; a Slurm runner's sbatch
    command line (its allocation's options: nodes, CPUs, GPUs, time, ...)."""
    view = runner._seat.view  # (its first seat's: a Slurm runner's nodes share its options)
    return {"event": "runner", "time": time.time(), **{option.name: option.log(runner) for option in LOGGED},
            "kind": getattr(runner, "kind", None), "host": _host_of(runner), "login": list(view.login),
            "logical_cores": runner.facts.get("logical_cores"), "machine": _machine_of(runner),
            **({"sbatch": runner.sbatch} if getattr(runner, "sbatch", None) else {})}


def _host_of(runner: Any) -> str | None:
    """Its machine; a Slurm runner's nodes (``n1,n2``), the hosts its commands' records name one by one."""
    if runner is None:
        return None
    nodes = getattr(runner, "nodes", None)
    return ",".join(nodes) if nodes else runner.facts.get("hostname")


def _machine_of(runner: Any) -> str | None:
    """The machine its launchers run on (a Slurm runner's nodes': ``vm`` or ``n1,n2``), as the summary names
    it: runners with the same one shared its CPUs."""
    labels = [seat.view.machine for seat in runner._seats if seat.view.machine is not None]
    return ",".join(dict.fromkeys(labels)) or None


def _replace_symlink(target: str, link: str) -> None:
    """Point ``link`` at ``target`` atomically; never replace a file that is not a symlink."""
    try:
        if os.path.exists(link) and not os.path.islink(link):
            return
        tmp = f"{link}.{os.getpid()}"
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError:
        pass  # a convenience only


def _warn_on_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
