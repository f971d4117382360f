"""Where ``report -o`` and ``export`` write: the file a user named, never what happens to stand there.

What stands at the path decides how it is written:

- nothing, or a regular file: the output is written under a new temporary name in the same directory and
  renamed over the path when complete, so a failed write never leaves half a file under the name;
- a FIFO or a character device (``/dev/null``, a terminal): opened and written into, never replaced -- a
  rename would put a regular file in its place (as root, ``-o /dev/null`` replaced the system's null device);
- anything else is refused before the run is even read: a directory, a block device (a disk: no report is
  ever meant to go there), a socket, and a symbolic link. A link is neither written through (its destination
  could be any file) nor replaced (``/dev/stdout`` is a link, in a directory root may write to); the message
  names where it points, and ``-`` writes to stdout.

Every refusal and every failure to write is a :class:`TargetError` that names the path as the user gave it,
never the temporary name.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from typing import IO, Callable

from .._errors import ParalluxError

_STREAM_KINDS = frozenset((stat.S_IFIFO, stat.S_IFCHR))
_REFUSED_KINDS = {stat.S_IFDIR: "is a directory", stat.S_IFBLK: "is a block device",
                  stat.S_IFSOCK: "is a socket"}


class TargetError(ParalluxError):
    """The file a view was asked to write cannot be written there: a usage error, exit 2."""


def check_target(path: str) -> bool:
    """Refuse what cannot be written at ``path`` (before the run is read, so the user waits for nothing);
    True when it is a FIFO or a device, written into rather than replaced."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        _check_directory(path)
        return False
    except OSError as exc:
        raise _error(path, exc) from None
    kind = stat.S_IFMT(info.st_mode)
    if kind == stat.S_IFLNK:
        raise TargetError(f"{path}: is a symbolic link (to {_link_text(path)}); parallux neither writes "
                          "through a link nor replaces it: give the file itself, or - for stdout")
    if kind not in _STREAM_KINDS and kind != stat.S_IFREG:
        what = _REFUSED_KINDS.get(kind, "is not a regular file")
        raise TargetError(f"{path}: {what}; give the name of a file to write")
    return kind in _STREAM_KINDS


def write_target(path: str, write: Callable[[IO[str]], None]) -> None:
    """Write the output at ``path`` as the module docstring says."""
    if check_target(path):
        _write_into(path, write)
    else:
        _write_and_rename(path, write)


def _write_into(path: str, write: Callable[[IO[str]], None]) -> None:
    # No O_CREAT, no O_TRUNC: this only ever opens what check_target saw; O_NOFOLLOW and the fstat below
    # catch a swap in between (a link, or a regular file that would be written over in place).
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise _error(path, exc) from None
    if stat.S_IFMT(os.fstat(fd).st_mode) not in _STREAM_KINDS:
        os.close(fd)
        raise TargetError(f"{path}: changed while parallux was writing it; try again")
    _write_fd(path, fd, write)


def _write_and_rename(path: str, write: Callable[[IO[str]], None]) -> None:
    directory = os.path.dirname(path) or "."
    # O_EXCL: created here, never an existing file or a link someone put under the name.
    tmp = os.path.join(directory, f".parallux-{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise _error(path, exc) from None
    try:
        _write_fd(path, fd, write)
        if check_target(path):  # became a FIFO or a device meanwhile: not replaced
            raise TargetError(f"{path}: changed while parallux was writing it; try again")
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise _error(path, exc) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_fd(path: str, fd: int, write: Callable[[IO[str]], None]) -> None:
    """Write into the open ``fd`` and close it; an error names ``path``."""
    try:
        # surrogateescape: a name made of undecodable bytes (a file name) is written back as those bytes
        with open(fd, "w", encoding="utf-8", errors="surrogateescape", newline="") as stream:
            write(stream)
    except BrokenPipeError:  # the reader of a FIFO closed it: as for stdout, it has seen enough
        raise
    except OSError as exc:
        raise _error(path, exc) from None


def _check_directory(path: str) -> None:
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        what = "does not exist" if not os.path.lexists(directory) else "is not a directory"
        raise TargetError(f"cannot write {path}: its directory {directory} {what}")


def _error(path: str, exc: OSError) -> TargetError:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        try:
            _check_directory(path)
        except TargetError as missing:
            return missing
    if exc.errno == errno.EISDIR:
        return TargetError(f"{path}: is a directory; give the name of a file to write")
    return TargetError(f"cannot write {path}: {exc.strerror or exc}")


def _link_text(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"
