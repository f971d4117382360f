"""Trees to transfer and how to compare them: a tree with every kind of entry, its state (modes, mtimes,
contents, link targets), the temporary files a transfer may leave, and a runner line per kind of runner.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.sshd import SshdServer
from tests.ssh_cli import run_cli

KINDS = ("local", "ssh")
T0 = 1_600_000_000_000_000_000  # an mtime, in ns


def runner_line(kind: str, workspace: Path, name: str = "runner", extra: str = "") -> str:
    if kind == "local":
        return f"{name} = goal.local({name!r}, workspace={str(workspace)!r}{extra})"
    return f"{name} = goal.ssh({name!r}, host=goal.args['host'], workspace={str(workspace)!r}{extra})"


def tree_state(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything a copy must keep: kind, mode, mtime (files, dirs) and contents or link target."""
    state: dict[str, tuple[Any, ...]] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        rel = str(path.relative_to(root))
        info = path.lstat()
        if path.is_symlink():
            state[rel] = ("l", os.readlink(path))
        elif path.is_dir():
            state[rel] = ("d", stat.S_IMODE(info.st_mode), info.st_mtime_ns)
        else:
            state[rel] = ("f", stat.S_IMODE(info.st_mode), info.st_mtime_ns, path.read_bytes())
    return state


def make_tree(root: Path) -> Path:
    """Modes, a symlink (and a dangling one), names that are not ASCII or not even UTF-8, an empty file,
    a file bigger than one frame, nested directories with their own modes."""
    (root / "bin").mkdir(parents=True)
    (root / "data" / "deep").mkdir(parents=True)
    tool = root / "bin" / "tool"
    tool.write_text("#!/bin/sh\necho tool ran\n")
    tool.chmod(0o755)
    (root / "data" / "private").write_bytes(b"secret\n")
    (root / "data" / "private").chmod(0o600)
    (root / "data" / "café ünïcode.txt").write_text("non-ASCII name\n")
    (root / "data" / os.fsdecode(b"raw-\xff-byte")).write_bytes(b"a name that is not UTF-8\n")
    (root / "data" / "empty").write_bytes(b"")
    (root / "data" / "deep" / "big.bin").write_bytes(os.urandom(1_300_000))  # more than two frames
    (root / "data" / "deep").chmod(0o750)
    (root / "link").symlink_to("bin/tool")
    (root / "dangling").symlink_to("no/such/file")
    for index, path in enumerate(sorted(root.rglob("*"), reverse=True)):  # distinct mtimes, children first
        os.utime(path, ns=(1_600_000_000_000_000_000 + index * 1_234_567, 1_600_000_000_000_000_000 + index),
                 follow_symlinks=False)
    return root


def leftovers(root: Path) -> list[Path]:
    """Temporary files a transfer left behind."""
    return [path for path in root.rglob(".*.parallux")] if root.exists() else []


def run(srv: SshdServer, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(srv, config, *args, timeout=120)


@pytest.fixture
def unprivileged_launcher() -> Any:
    """A python= for an SSH runner whose launcher runs as nobody (the tests run as root, whom no permission
    denies anything), and a directory outside the tests' private tmp dirs for it to work in."""
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a launcher as nobody")
    base = Path(tempfile.mkdtemp(prefix="parallux-perm-", dir="/tmp"))
    try:
        base.chmod(0o755)
        python = base / "python-as-nobody"
        python.write_text('#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups '
                          '/usr/bin/python3 "$@"\n')  # (not a Python under /root, which nobody cannot run)
        python.chmod(0o755)
        (base / "ws").mkdir(mode=0o777)
        (base / "ws").chmod(0o777)
        yield base, python
    finally:
        shutil.rmtree(base, ignore_errors=True)
