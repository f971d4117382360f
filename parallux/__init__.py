"""Parallux: run shell commands in parallel on this machine, on SSH servers and on Slurm clusters, driven by a
Python config.

A config does ``from parallux import goal`` and describes runners, limits and commands; ``parallux config.py``
runs it. See README.md and docs/ for the guide and the reference.

The public names below are re-exported lazily (PEP 562): the ``parallux`` command imports this package
first and starts a local launcher before Trio is imported, so that the two start-ups overlap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import CommandCancelled as CommandCancelled
from ._errors import CommandError as CommandError
from ._errors import CommandFailed as CommandFailed
from ._errors import CommandOutOfMemory as CommandOutOfMemory
from ._errors import CommandLost as CommandLost
from ._errors import CommandTimeout as CommandTimeout
from ._errors import ConfigError as ConfigError
from ._errors import OutsideRuntimeError as OutsideRuntimeError
from ._errors import ParalluxError as ParalluxError
from ._errors import RunnerError as RunnerError
from ._version import __version__ as __version__

if TYPE_CHECKING:
    from ._goal import goal as goal
    from ._handles import Command as Command
    from ._handles import Group as Group
    from ._handles import Result as Result
    from ._runner import Runner as Runner
    from ._runner import RunnerStatus as RunnerStatus
    from ._transfer import Transfer as Transfer
    from ._workloads import Workload as Workload
    from ._workloads import workloads as workloads

_LAZY = {
    "goal": "._goal", "Command": "._handles", "Group": "._handles", "Result": "._handles",
    "Runner": "._runner", "RunnerStatus": "._runner", "Transfer": "._transfer", "Workload": "._workloads",
    "workloads": "._workloads",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'parallux' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "goal", "workloads", "Workload", "Command", "Group", "Result", "Runner", "RunnerStatus", "Transfer",
    "ParalluxError", "ConfigError", "OutsideRuntimeError", "RunnerError", "CommandError", "CommandFailed",
    "CommandOutOfMemory", "CommandTimeout", "CommandLost", "CommandCancelled", "__version__",
]
