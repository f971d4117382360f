"""Measuring and removing trees inside a root directory without ever following a symbolic link out of it.

``parallux clean`` removes what parallux made in a workspace (a generated work dir, a ``.history`` copy). A
user, a command or an attacker may have put a symbolic link anywhere on the way: a path is therefore walked
from the root's descriptor one component at a time with ``O_NOFOLLOW`` (``openat``), and a tree is removed
by ``shutil.rmtree(name, dir_fd=...)``, which does the same inside it (and refuses a link at its top). A
component that is a link, or not a directory, is :class:`Refused`: the path is left as it is, named.

The root itself (a workspace the config named) is opened as it is: following a link there is the user's
choice, not something found on the way.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from contextlib import contextmanager
from typing import Any, Iterator

from .._launcher import LOCK_NAME, lock_is_live

LOCK_BYTES = 64 * 1024
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class Refused(Exception):
    """A path that is not the directory parallux made there (a symbolic link, a file): it is left alone."""


@contextmanager
def opened(root: str, relpath: str) -> Iterator[int]:
    """A descriptor of the directory ``root/relpath``, reached without following a link below ``root``.

    Raises Refused for a component that is a link or no directory, FileNotFoundError when one is missing.
    """
    fd = os.open(root, _DIRECTORY)
    try:
        for name in components(relpath):
            inner = open_below(fd, name)
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def components(relpath: str) -> list[str]:
    """The names on the way to ``relpath`` ("": the root itself); only plain names."""
    if relpath == "":
        return []
    parts = relpath.split("/")
    if relpath.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise Refused(f"{relpath!r} is not a plain relative path")
    return parts


def open_below(dir_fd: int, name: str) -> int:
    try:
        return os.open(name, _DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Refused(describe(dir_fd, name)) from None
        raise


def describe(dir_fd: int, name: str) -> str:
    """What stands at ``name`` instead of a directory."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError:
        return "gone while it was looked at"
    if stat.S_ISLNK(mode):
        return "a symbolic link, not a directory parallux made (not followed)"
    return "not a directory"


def lstat_below(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def tree_size(dir_fd: int, name: str, seen: set[tuple[int, int]]) -> int:
    """Bytes on disk of the tree at ``name`` (as ``du``: links counted as themselves, hard links once)."""
    top = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    total = _blocks(top, seen)
    if not stat.S_ISDIR(top.st_mode):
        return total
    for _, dirs, files, fd in os.fwalk(name, dir_fd=dir_fd, follow_symlinks=False):
        for entry in dirs + files:
            try:
                total += _blocks(os.stat(entry, dir_fd=fd, follow_symlinks=False), seen)
            except FileNotFoundError:
                pass
    return total


def _blocks(st: os.stat_result, seen: set[tuple[int, int]]) -> int:
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return 0
    seen.add(key)
    return st.st_blocks * 512


def remove_tree(dir_fd: int, name: str) -> None:
    """Remove the directory ``name`` and everything in it, following no link."""
    if not shutil.rmtree.avoids_symlink_attacks:  # (every platform parallux runs on has openat)
        raise Refused("this platform cannot remove a tree without following symbolic links")
    shutil.rmtree(name, dir_fd=dir_fd)


def remove_if_empty(dir_fd: int, name: str) -> bool:
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except OSError:
        return False
    return True


def live_holder(dir_fd: int) -> dict[str, Any] | None:
    """The lock record of the run that holds the work dir open at ``dir_fd``, if it lives."""
    try:  # (O_NONBLOCK: a FIFO planted there must not block clean in open())
        fd = os.open(LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError:  # a link, say: no lock parallux wrote, and nothing to trust either way
        return {"run_id": "unknown (an unreadable lock)"}
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO, a device: no lock parallux wrote either
            return {"run_id": "unknown (an unreadable lock)"}
        data = os.read(fd, LOCK_BYTES)
    finally:
        os.close(fd)
    try:
        holder = json.loads(data)
    except ValueError:  # being written this instant: its writer renames it into place whole
        return {"run_id": "unknown (a lock being written)"}
    if not isinstance(holder, dict):
        return {"run_id": "unknown (an unreadable lock)"}
    return holder if lock_is_live(holder, dir_fd) else None
