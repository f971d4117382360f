"""Parallux: run shell commands in parallel on this machine and on SSH servers, driven by a Python config.

A config does ``from parallux import goal`` and describes runners, limits and commands; ``parallux config.py``
runs it. See README.md and docs/ for the guide and the reference.
"""

from __future__ import annotations

from ._errors import CommandCancelled as CommandCancelled
from ._errors import CommandError as CommandError
from ._errors import CommandFailed as CommandFailed
from ._errors import CommandLost as CommandLost
from ._errors import CommandTimeout as CommandTimeout
from ._errors import ConfigError as ConfigError
from ._errors import OutsideRuntimeError as OutsideRuntimeError
from ._errors import ParalluxError as ParalluxError
from ._errors import RunnerError as RunnerError
from ._goal import GoalProxy as _GoalProxy
from ._handles import Command as Command
from ._handles import Group as Group
from ._handles import Result as Result
from ._runner import Runner as Runner
from ._runner import RunnerStatus as RunnerStatus
from ._version import __version__ as __version__
from ._workloads import Workload as Workload
from ._workloads import workloads as workloads

goal = _GoalProxy()

__all__ = [
    "goal", "workloads", "Workload", "Command", "Group", "Result", "Runner", "RunnerStatus",
    "ParalluxError", "ConfigError", "OutsideRuntimeError", "RunnerError", "CommandError", "CommandFailed",
    "CommandTimeout", "CommandLost", "CommandCancelled", "__version__",
]
