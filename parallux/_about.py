"""What ``parallux --version`` prints: parallux's version, the Python running it, and the versions of the
libraries it is built on, read from their installed metadata (nothing is imported: the answer is instant and
never warns)."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

from ._version import __version__

# the libraries a bug report needs: the runtime, the SSH stack and its crypto, the terminal, the run log, and
# compare's statistics
DEPENDENCIES = ("trio", "trio-asyncio", "asyncssh", "cryptography", "rich", "orjson", "scipy")


def installed_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def version_text() -> str:
    where = os.path.dirname(os.path.abspath(__file__))
    lines = [f"parallux {__version__} ({where})",
             f"Python {platform.python_version()} ({platform.python_implementation()}, {sys.executable})"]
    width = max(map(len, DEPENDENCIES))
    lines += [f"  {name:<{width}}  {installed_version(name)}" for name in DEPENDENCIES]
    return "\n".join(lines)
