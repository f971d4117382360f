"""The exceptions parallux raises.

Every error a config can see derives from :class:`ParalluxError`::

    ParalluxError
     ├── ConfigError          bad input, found at the call that received it, before anything runs
     │    ├── OutsideRuntimeError   ``goal`` used by a config started with plain ``python3``
     │    └── UnknownAttributeError  a misspelt method or attribute of ``goal`` or of a runner
     ├── RunnerError          a runner cannot be used: connection, authentication, launcher, numactl
     └── CommandError         one or more ``check=True`` commands did not succeed (``.results``)
          ├── CommandFailed   it exited with a non-zero status
          │    └── CommandOutOfMemory  its process tree exceeded its ``memory`` limit and was killed
          ├── CommandTimeout  its ``timeout`` expired and its process tree was stopped
          ├── CommandLost     it could not be launched, or its runner's connection dropped
          └── CommandCancelled  the run was interrupted before it finished

Foreign exceptions (``OSError``, asyncssh's) are translated where they enter parallux, so a config never has
to know which transport ran its command.
"""

from __future__ import annotations

from typing import Any, Sequence


class ParalluxError(Exception):
    """Root of every error parallux raises."""


class ConfigError(ParalluxError, ValueError):
    """A runner, option or call is invalid; raised before anything is started."""


class OutsideRuntimeError(ConfigError, RuntimeError):
    """The config was started with plain ``python3`` instead of ``parallux``."""


class UnknownAttributeError(ConfigError, AttributeError):
    """``goal.argz``: no such method or attribute. An AttributeError too, so ``hasattr()`` and
    ``getattr(obj, name, default)`` work as they do on any object."""


class RunnerError(ParalluxError):
    """A runner cannot be set up or reached (SSH connection, remote Python, numactl, ...)."""


class CommandError(ParalluxError):
    """One or more commands with ``check=True`` did not succeed.

    ``results`` holds every such result, in submission order; ``result`` is the first of them.
    """

    def __init__(self, results: Sequence[Any], message: str) -> None:
        self.results = list(results)
        super().__init__(message)

    @property
    def result(self) -> Any:
        return self.results[0]


class CommandFailed(CommandError):
    """A command exited with a non-zero status."""


class CommandOutOfMemory(CommandFailed):
    """A command's process tree exceeded its ``memory`` limit (status ``"oom"``) and was killed."""


class CommandTimeout(CommandError):
    """A command ran past its ``timeout`` and was stopped."""


class CommandLost(CommandError):
    """A command could not be launched, or the connection to its runner dropped."""


class CommandCancelled(CommandError):
    """A command was stopped because the run was interrupted."""


class SchedulerPolicyError(Exception):
    """The user's scheduler function raised, or returned something it was not offered. Not a ParalluxError:
    the engine turns it into the run's end, reporting the config's own frames."""


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
