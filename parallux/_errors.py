"""The exceptions parallux raises.

Every error a config can see derives from :class:`ParalluxError`::

    ParalluxError
     ├── ConfigError          bad input, found at the call that received it, before anything runs
     │    └── OutsideRuntimeError   ``goal`` used by a config started with plain ``python3``
     ├── RunnerError          a runner cannot be used: connection, authentication, launcher, numactl
     └── CommandError         one or more ``check=True`` commands did not succeed (``.results``)
          ├── CommandFailed   it exited with a non-zero status
          ├── CommandTimeout  its ``timeout`` expired and its process tree was stopped
          ├── CommandLost     it could not be launched, or its runner's connection dropped
          └── CommandCancelled  the run was interrupted before it finished

Foreign exceptions (``OSError``, asyncssh's) are translated where they enter parallux, so a config never has
to know which transport ran its command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from ._handles import Result


class ParalluxError(Exception):
    """Root of every error parallux raises."""


class ConfigError(ParalluxError, ValueError):
    """A runner, option or call is invalid; raised before anything is started."""


class OutsideRuntimeError(ConfigError, RuntimeError):
    """The config was started with plain ``python3`` instead of ``parallux``."""


class RunnerError(ParalluxError):
    """A runner cannot be set up or reached (SSH connection, remote Python, numactl, ...)."""


class CommandError(ParalluxError):
    """One or more commands with ``check=True`` did not succeed.

    ``results`` holds every such result, in submission order; ``result`` is the first of them.
    """

    def __init__(self, results: Sequence[Result], message: str | None = None) -> None:
        self.results = list(results)
        super().__init__(message or describe_failures(self.results))

    @property
    def result(self) -> Result:
        return self.results[0]


class CommandFailed(CommandError):
    """A command exited with a non-zero status."""


class CommandTimeout(CommandError):
    """A command ran past its ``timeout`` and was stopped."""


class CommandLost(CommandError):
    """A command could not be launched, or the connection to its runner dropped."""


class CommandCancelled(CommandError):
    """A command was stopped because the run was interrupted."""


def leaf_errors(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, which Trio nurseries wrap errors in."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaf_errors(inner)]
    return [exc]


def plain_error(exc: BaseException) -> BaseException:
    """The ParalluxError a user should see instead of a nursery's exception group, if there is one."""
    leaves = leaf_errors(exc)
    ours = [leaf for leaf in leaves if isinstance(leaf, ParalluxError)]
    if ours:
        return ours[0]
    return leaves[0] if len(leaves) == 1 else exc


DESCRIBED = 10  # failures described in full in one error message

_BY_STATUS: dict[str, type[CommandError]] = {
    "failed": CommandFailed,
    "timeout": CommandTimeout,
    "error": CommandLost,
    "cancelled": CommandCancelled,
}


def command_error(results: Sequence[Result]) -> CommandError:
    """The most specific error for these failed results (one class when they all failed alike)."""
    kinds = {_BY_STATUS.get(r.status, CommandError) for r in results}
    cls = kinds.pop() if len(kinds) == 1 else CommandError
    return cls(results)


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
        "failed": f"exited with status {result.returncode}",
        "timeout": f"timed out after {result.timeout:g} s and was stopped" if result.timeout else "timed out",
        "error": f"could not run: {result.error}",
        "cancelled": "was cancelled",
    }.get(result.status, f"ended with status {result.status!r}")
    where = f" on runner {result.runner_name!r}" if result.runner_name is not None else ""
    lines = [f"command {result.name!r}{where} {what}",
             f"  command:  {result.command_text}",
             f"  work dir: {result.work_dir}"]
    tail = result.stderr_tail(tail_lines)
    if tail:
        lines.append("  stderr (last lines):")
        lines += [f"    | {line}" for line in tail]
    return "\n".join(lines)
