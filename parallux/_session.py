"""Loading and running a config inside the controlled runtime, and turning how it ended into an exit status.

The config executes as ``__main__`` in the main thread with ``goal`` bound; the engine thread runs beside
it. However the config ends -- returning, raising, Ctrl-C, SIGTERM -- this module makes sure the engine
stops what is running and every launcher has ended before parallux exits.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import sysconfig
import time
import traceback
import types
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from . import _forks
from ._after import summary_lines as after_summary_lines
from ._benchmarks import summary_lines
from ._engine import Engine
from ._exit import EXIT_FAILED, EXIT_OK, EXIT_SIGHUP, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE
from ._errors import CommandError, ConfigError, ParalluxError, RunnerError
from ._goal import Goal, GoalProxy
from ._progress import PlainReporter, Progress, is_terminal
from ._summary import summary_text
from ._provenance import config_sha256, git_state
from ._runlog import RunLog
from ._transports import Transport

if TYPE_CHECKING:
    import trio

DRY_RUN_AUTOJUMP = 0.001  # real seconds of an idle loop before a dry run's virtual clock jumps
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
LIBRARY_DIRS = tuple({PACKAGE_DIR, *(sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib"))})


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: handled like Ctrl-C, with its own exit status."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return EXIT_SIGHUP if self.signum == signal.SIGHUP else EXIT_SIGTERM

    @property
    def verb(self) -> str:
        return "hung up" if self.signum == signal.SIGHUP else "terminated"


STOPPING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@dataclass
class RunOptions:
    dry_run: bool = False
    quiet: bool = False
    verbose: bool = False
    resume: bool = False
    retries: int = 0
    halt: str = "never"
    halt_after: int = 1
    log_path: str | None = None      # None: <state dir>/parallux/runs/<config key>/<run id>.jsonl
    write_log: bool = True
    progress_interval: float = 10.0
    live: bool | None = None         # None: a live display when stderr is a terminal
    observers: list[Callable[..., None]] = field(default_factory=list)


def dry_run_clock() -> trio.abc.Clock:
    """The dry run's virtual clock: every planned command "takes" one second of it. It jumps once the loop
    has been idle for 1 ms of real time (not at once: an idle loop with a zero threshold polls without
    sleeping, and that thread would starve the config's thread of the GIL)."""
    from trio.testing import MockClock  # (trio.testing imports pytest: only a dry run pays for it)
    return MockClock(autojump_threshold=DRY_RUN_AUTOJUMP)


def planned(transport: Transport) -> Transport:
    """A dry run's transport for a runner: a plan launcher in its place (``_transports._plan``)."""
    from ._transports._plan import PlanTransport
    return PlanTransport(transport)


def new_run_id() -> str:
    """Sortable, and unique across runs: a second run never writes into the first run's directories."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def load_config(path: str) -> tuple[types.CodeType, str]:
    """Read and compile the config, so syntax errors are reported before anything starts; the code, and the
    SHA-256 of the bytes it was compiled from (the run log's ``config_sha256``)."""
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path!r}: {exc.strerror}") from exc
    return compile(source, os.path.abspath(path), "exec", dont_inherit=True), config_sha256(source)


def execute_config(code: types.CodeType, path: str, argv: list[str]) -> None:
    """Run the config as ``__main__``, with its directory first on sys.path so it can import neighbours."""
    module = types.ModuleType("__main__")
    module.__file__ = os.path.abspath(path)
    module.__builtins__ = __builtins__  # type: ignore[attr-defined]
    saved_main = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    sys.argv = [path, *argv]
    try:
        exec(code, module.__dict__)
    finally:
        if saved_main is not None:
            sys.modules["__main__"] = saved_main


class Session:
    """One run of one config: the engine, the goal, and the bookkeeping of how it ended."""

    def __init__(self, path: str, argv: list[str], options: RunOptions) -> None:
        self.path = path
        self.argv = argv
        self.options = options
        self.run_id = new_run_id()
        self.engine = Engine(self.run_id, clock=dry_run_clock() if options.dry_run else None)
        self.engine.observers.extend(options.observers)
        self.engine.environments.enabled = not options.dry_run  # (a dry run reads no machine)
        self.goal: Goal | None = None
        self.progress = Progress()
        self.run_log: RunLog | None = None
        self.reporter: Any = None
        self.config_sha256: str | None = None

    def run(self) -> int:
        try:
            code, self.config_sha256 = load_config(self.path)
        except SyntaxError as exc:
            report(f"parallux: syntax error in {exc.filename}, line {exc.lineno}: {exc.msg}")
            return EXIT_USAGE
        except ConfigError as exc:
            report(f"parallux: {exc}")
            return EXIT_USAGE
        previous = {signum: signal.signal(signum, _raise_terminated) for signum in STOPPING_SIGNALS}
        self._open_reporting()
        self.engine.start()
        self.engine.call(self.engine.set_halt, self.options.halt, self.options.halt_after)
        self.goal = Goal(self.engine, argv=self.argv, run_id=self.run_id, resume=self.options.resume,
                         retries=self.options.retries, dry_run=self.options.dry_run,
                         transport_for=planned if self.options.dry_run else lambda transport: transport)
        GoalProxy._current = self.goal
        try:
            status = self._run_config(code)
        finally:
            GoalProxy._current = None
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        self._close_reporting(status)
        if status in (EXIT_SIGINT, EXIT_SIGTERM, EXIT_SIGHUP) and not self.options.dry_run:
            hint = resume_hint(self.goal._submissions.all_commands(), f"{self.run_id}/")
            if hint:
                report(hint)
        return status

    def _open_reporting(self) -> None:
        options = self.options
        self.engine.observers.append(self.progress)
        if options.write_log and not options.dry_run:
            self.run_log = RunLog(options.log_path, self.run_id, self.path, warn=report)
            try:
                self.run_log.open(self.run_id, self.path, self.argv,
                                  {"config_sha256": self.config_sha256, "git": git_state(self.path)})
                self.engine.observers.append(self.run_log)
            except OSError as exc:
                report(f"parallux: cannot write the run log {self.run_log.path}: {exc.strerror}; going on without")
                self.run_log = None
        if options.dry_run:
            self.reporter = None
            return
        live = options.live if options.live is not None else is_terminal(sys.stderr)
        if live and not options.quiet and not options.verbose:
            from ._live import LiveReporter  # rich is imported only for a terminal
            self.reporter = LiveReporter(self.progress, pool=self._pool_states)
        else:
            self.reporter = PlainReporter(self.progress, verbose=options.verbose, quiet=options.quiet,
                                          interval=options.progress_interval)
        self.reporter.start()

    def _pool_states(self) -> list[tuple[str, str]]:
        return self.goal._pool.states() if self.goal is not None else []

    def _close_reporting(self, status: int) -> None:
        if self.reporter is not None:
            try:
                self.reporter.stop()
            except OSError:  # the terminal is gone: the run log below must still be completed
                pass
        if self.run_log is not None:
            self.run_log.log_runners([seat.handle for seat in self.engine.seats])
            self.run_log.close({**self.progress.summary(), "started": self.engine.started_count,
                                "exit_status": status, "halted": self.engine.halt_reason})
        if self.options.dry_run:
            planned = self.progress.finished
            report(f"parallux: dry run: {planned} command{'' if planned == 1 else 's'} planned; "
                   "nothing was started")
            return
        if self.progress.finished or self.run_log is not None:
            report(summary_text(self.progress, self.run_log.path if self.run_log else None,
                                run_id=self.run_id if self.run_log else None,
                                log_error=self.run_log.error if self.run_log else None,
                                machines=self.engine.machines.summary_lines(),
                                extra=self._dependency_lines() + self._benchmark_lines()))
        if self.engine.halt_reason:
            report(f"parallux: {self.engine.halt_reason}; commands not started were cancelled")

    def _dependency_lines(self) -> list[str]:
        return after_summary_lines(self.goal._submissions.all_commands()) if self.goal is not None else []

    def _benchmark_lines(self) -> list[str]:
        submissions = self.goal._submissions if self.goal is not None else None
        if submissions is None or not submissions.benchmarks:
            return []
        return summary_lines(submissions.benchmarks, submissions.order.describe())

    def _run_config(self, code: types.CodeType) -> int:
        assert self.goal is not None
        try:
            self._execute(code)
            self.goal._submissions.issue_leftovers()
            self._wait_for_everything()
        except (KeyboardInterrupt, Terminated) as exc:
            return self._interrupted(exc)
        except BaseException as exc:  # the config raised: stop what runs, then report its error
            return self._config_failed(exc)
        self._stop_engine(cancel=False)
        if self.engine.policy_error is not None:
            return self._policy_failed()
        failed = [r for c in self.goal._submissions.all_commands() if (r := c.result) is not None
                  if r.check and not r.succeeded and r.status != "planned"]
        if failed:
            report(f"parallux: {brief_failures(failed)} (check=True); details below")
            return EXIT_FAILED
        return EXIT_OK

    def _execute(self, code: types.CodeType) -> None:
        """Run the config; ``sys.exit(0)`` ends it like returning. A child the config forked ends here."""
        try:
            execute_config(code, self.path, self.argv)
        except BaseException as exc:
            if _forks.forked:
                _forks.end_child(exc, lambda error: format_config_error(error, self.path))
            if not isinstance(exc, SystemExit) or exc.code not in (0, None):
                raise
        if _forks.forked:
            _forks.end_child(None, str)

    def _wait_for_everything(self) -> None:
        while not self.engine.wait_idle(timeout=0.5):
            pass

    def _interrupted(self, exc: BaseException) -> int:
        code = exc.exit_status if isinstance(exc, Terminated) else EXIT_SIGINT
        report(f"parallux: {exc.verb if isinstance(exc, Terminated) else 'interrupted'}; stopping every command")
        self._stop_engine(cancel=True)
        return code

    def _policy_failed(self) -> int:
        """The user's scheduler function failed: show where in their code, not the cancellations it caused."""
        error = self.engine.policy_error
        assert error is not None
        report(format_config_error(error.__cause__ or error, self.path))
        if error.__cause__ is not None:
            report(f"parallux: {error}")
        return EXIT_FAILED

    def _config_failed(self, exc: BaseException) -> int:
        started = self.engine.started_count
        self._stop_engine(cancel=True)
        if self.engine.policy_error is not None:
            return self._policy_failed()
        if isinstance(exc, SystemExit):
            return self._config_exited(exc)
        report(format_config_error(exc, self.path))
        if isinstance(exc, (ConfigError, RunnerError)) and (started == 0 or self.options.dry_run):
            return EXIT_USAGE  # found before any command ran (a dry run's planned commands never do)
        return EXIT_FAILED

    def _config_exited(self, exc: SystemExit) -> int:
        """``sys.exit(3)`` or ``sys.exit("message")`` (0 and None ended the config like returning): as Python
        does, a message goes to stderr and means status 1; and the stopped commands are accounted for."""
        assert self.goal is not None
        status = exc.code
        if not isinstance(status, int):
            report(str(status))
            status = EXIT_FAILED
        unfinished = sum(1 for c in self.goal._submissions.all_commands()
                         if c.result is None or c.result.status == "cancelled")
        if unfinished:
            report(f"parallux: the config called sys.exit(); {unfinished} command{'s' if unfinished != 1 else ''} "
                   f"not finished {'were' if unfinished != 1 else 'was'} stopped or never started")
        return int(status)

    def _stop_engine(self, cancel: bool) -> None:
        """Stop the engine; a second Ctrl-C during the clean-up kills every command at once."""
        hard = False
        while True:
            try:
                if cancel:
                    self.engine.cancel(hard=hard)
                self.engine.shutdown()
                while not self.engine.join(timeout=0.2):
                    pass
                return
            except (KeyboardInterrupt, Terminated):
                cancel = hard = True
                report("parallux: killing every command now")


def resume_hint(commands: list[Any], generated_prefix: str) -> str | None:
    """After an interruption: how many commands did not finish, and that --resume skips the ones that did
    -- those with an explicit work_relpath, since a generated one (``<run id>/...``) is new in every run."""
    unfinished = sum(1 for c in commands if c.result is None or c.result.status != "ok")
    explicit_done = [c for c in commands if c.result is not None and c.result.status == "ok"
                     and not c.work_relpath.startswith(generated_prefix)]
    if not unfinished or not explicit_done:
        return None
    rerun = sum(1 for c in commands if c.result is not None and c.result.status == "ok") - len(explicit_done)
    return (f"parallux: {unfinished} command{'s' if unfinished != 1 else ''} did not finish; rerun with --resume "
            f"to skip the {len(explicit_done)} that completed"
            + (f" (the {rerun} without an explicit work_relpath would run again)" if rerun else ""))


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def format_config_error(exc: BaseException, config_path: str) -> str:
    """The error as the user needs it: where in *their* config, and what; never parallux's internals."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if is_user_frame(f.filename)]
    lines = []
    if frames:
        lines.append("parallux: the config stopped with an error")
        lines += [line.rstrip("\n") for line in traceback.format_list(frames)]
    if isinstance(exc, ParalluxError):
        label = type(exc).__name__
        lines.append(f"{label}: {brief_failures(exc.results)}; details below" if isinstance(exc, CommandError)
                     else f"{label}: {exc}")
    else:
        lines += [line.rstrip("\n") for line in traceback.format_exception_only(type(exc), exc)]
    return "\n".join(lines)


def brief_failures(results: list[Any]) -> str:
    names = ", ".join(repr(r.name) for r in results[:5]) + (", ..." if len(results) > 5 else "")
    return f"{len(results)} command{'s' if len(results) != 1 else ''} did not succeed: {names}"


def is_user_frame(filename: str) -> bool:
    """Frames of the config and its own modules; not parallux's, the standard library's or trio's."""
    return not filename.startswith(LIBRARY_DIRS) and not filename.startswith("<frozen")


def report(message: str) -> None:
    """A message on stderr -- unless stderr is gone (the terminal closed: SIGHUP), when the run log and the
    exit status are all that can tell."""
    try:
        print(message, file=sys.stderr, flush=True)
    except OSError:
        pass
