"""Failures in words: the paragraph about a failed command, the error a failed ``sync()`` raises, and the
cause failures are grouped by.

Everything here reads only the results: the stderr tail is the one the launcher sent with the command's
exit event, so describing a failure -- or building the exception that carries it -- never reads a file or
waits for a runner.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

from ._errors import CommandCancelled, CommandError, CommandFailed, CommandLost, CommandOutOfMemory, CommandTimeout
from ._sizes import format_size
from ._status import CUT_SHORT, Status


class Result(Protocol):
    """What is read of a result here (``_handles.Result`` has it; this module sits below it)."""

    name: str
    status: str
    returncode: int | None
    error: str | None
    timeout: float | None
    memory: int | None  # its memory= limit (bytes)
    runner_name: str | None
    command_text: str
    work_dir: str | None
    _kind: str | None  # what kind of "error" (see _status.CUT_SHORT)

    def stderr_tail(self, lines: int = 5) -> list[str]: ...

DESCRIBED = 10  # failures described in full in one error message
COMMAND_SHOWN = 200  # characters of a command line shown in a failure: a 1 MB one is not printed twice per failure

_BY_STATUS: dict[str, type[CommandError]] = {
    Status.FAILED: CommandFailed,
    Status.TIMEOUT: CommandTimeout,
    Status.OOM: CommandOutOfMemory,
    Status.ERROR: CommandLost,
    Status.CANCELLED: CommandCancelled,
}


def command_error(results: Sequence[Result]) -> CommandError:
    """The most specific error for these failed results (one class when they all failed alike)."""
    kinds = {_BY_STATUS.get(r.status, CommandError) for r in results}
    cls = kinds.pop() if len(kinds) == 1 else CommandError
    return cls(results, describe_failures(results))


def describe_failures(results: Sequence[Result], tail_lines: int = 5) -> str:
    """One paragraph per failed command: name, runner, status/exit code, work dir, stderr tail."""
    if len(results) == 1:
        return describe_failure(results[0], tail_lines)
    parts = [f"{len(results)} commands did not succeed:"]
    parts += [describe_failure(r, tail_lines) for r in results[:DESCRIBED]]
    if len(results) > DESCRIBED:
        parts.append(f"... and {len(results) - DESCRIBED} more: " + ", ".join(r.name for r in results[DESCRIBED:]))
    return "\n\n".join(parts)


def describe_failure(result: Result, tail_lines: int = 5) -> str:
    """The paragraph about one failed command. Its stderr tail is the one its launcher sent with the exit
    event: building an error or a summary reads no file and never waits for a runner."""
    what = {
        Status.FAILED: f"exited with status {result.returncode}" + (f", but {result.error}" if result.error else ""),
        Status.TIMEOUT: f"timed out after {result.timeout:g} s and was stopped" if result.timeout else "timed out",
        Status.OOM: f"ended {oom_text(result.memory)}: its process tree ran out of memory and was killed",
        Status.ERROR: f"{'was cut short' if result._kind in CUT_SHORT else 'could not run'}: {result.error}",
        Status.CANCELLED: "was cancelled" + (f" ({result.error})" if result.error else ""),
    }.get(result.status, f"ended with status {result.status!r}")
    where = f" on runner {result.runner_name!r}" if result.runner_name is not None else ""
    lines = [f"command {result.name!r}{execution_of(result)}{where} {what}",
             f"  command:  {shown_command(result)}",
             f"  work dir: {result.work_dir}"]
    tail = result.stderr_tail(tail_lines)
    if tail:
        lines.append("  stderr (last lines):")
        lines += [f"    | {line}" for line in tail]
    return "\n".join(lines)


def execution_of(result: Result) -> str:
    """`` (repetition r3)``, `` (warm-up w1)``: which execution of a benchmark; "" for a plain command."""
    label = getattr(result, "repetition", None)
    if not label:
        return ""
    return f" ({'warm-up' if label.startswith('w') else 'repetition'} {label})"


def shown_command(result: Result) -> str:
    """The command line, its start only when it is long; command.txt and the run log keep it whole."""
    text = result.command_text
    if len(text) <= COMMAND_SHOWN:
        return text
    where = f"full text in {result.work_dir}/command.txt" if result.work_dir else "full text in the run log"
    return f"{text[:COMMAND_SHOWN]}... ({len(text.encode(errors='replace'))} bytes; {where})"


def oom_text(limit: int | None) -> str:
    """How an ``oom`` is named: ``oom (limit 64 MiB)``; plain ``oom`` where no limit of its own was set (the
    machine's OOM killer, or a cgroup above the command's)."""
    return f"oom (limit {format_size(limit)})" if limit else "oom"


# status, exit status (of a failed command) or memory limit (of an oom), last stderr line
Cause = tuple[str, "int | None", str]


def failure_cause(result: Result) -> Cause:
    """What failures group by: status, exit status (of a failed command) or limit (of an oom), the last line
    of stderr -- or for an ``error``, its reason (a dead launcher, a lost connection), whatever the command
    had said."""
    if result.status == "error" and result.error:
        return result.status, None, result.error
    if result.status == "failed" and result.error:  # exited 0, but a metric is missing (or unreadable)
        return result.status, result.returncode, result.error
    tail = result.stderr_tail(1)
    number = {"failed": result.returncode, "oom": result.memory}.get(result.status)
    return result.status, number, tail[-1].strip() if tail else ""


def describe_cause(cause: Cause, runners: Any) -> str:
    status, number, line = cause
    what = f"failed (exit {number})" if status == "failed" else oom_text(number) if status == "oom" else status
    names = sorted({name or "no runner" for name in runners})  # (a command no runner could take has none)
    return f"{what} on {', '.join(names)}" + (f": {line}" if line else "")
