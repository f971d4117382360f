"""The quick check of a transfer (rsync's): the manifests of two trees, and what of the source to send.

A manifest lists a file or tree's entries (``_launcher.walk``: relpath, kind, size, mtime in ns, mode,
symlink target). :func:`plan` compares the source's with the destination's: a file whose size and mtime
already match is skipped, one that only differs in mode gets its mode set, symlinks are compared by target.
"""

from __future__ import annotations

import errno
import os
import posixpath
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ._launcher import HISTORY_DIR, LOCK_NAME, describe_os_error, walk


class Failed(Exception):
    """A transfer could not be done: why, in a few words naming the path (a RunnerError once it leaves here)."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class Entry(NamedTuple):
    """One entry of a tree's manifest (see ``_launcher.walk``); ``rel`` "" is the root."""

    rel: str
    kind: str       # "f" file, "d" directory, "l" symlink, "o" anything else
    size: int
    mtime_ns: int
    mode: int
    target: str | None


Manifest = dict[str, Entry]


def local_manifest(path: str, recursive: bool = True, must_exist: bool = True,
                   follow: bool = True) -> list[Entry] | None:
    """The entries of a local file or tree (None if it does not exist and need not); ``follow`` False: a
    destination's, see ``_launcher.walk``."""
    try:
        return [Entry(*item) for item in walk(os.fsencode(path), recursive, follow)]
    except FileNotFoundError as exc:
        if must_exist:
            raise Failed(describe_os_error(exc), errno.ENOENT) from None
        return None
    except OSError as exc:
        raise Failed(describe_os_error(exc), exc.errno) from None


def put_manifest(path: str) -> list[Entry]:
    """The entries of a put's source, without what parallux keeps in a work dir: ``.history/`` directories
    (with all they hold: earlier runs' files) and ``.parallux-lock`` files (a run's lock). A put of a build
    tree copies the build, not the history of its commands."""
    left_out: set[str] = set()
    entries = []
    for entry in local_manifest(path) or ():
        name = posixpath.basename(entry.rel)
        if entry.rel and (posixpath.dirname(entry.rel) in left_out or name == LOCK_NAME
                          or (name == HISTORY_DIR and entry.kind == "d")):
            left_out.add(entry.rel)  # (a directory comes before what it holds)
            continue
        entries.append(entry)
    return entries


@dataclass
class Plan:
    """What a transfer has to do, once the quick check has compared the two manifests."""

    dirs: list[list[Any]] = field(default_factory=list)    # [rel, mode, mtime_ns]: create, then set at the end
    files: list[list[Any]] = field(default_factory=list)   # [rel, mode, mtime_ns]: to send
    links: list[list[Any]] = field(default_factory=list)   # [rel, target, mtime_ns]: to make
    attrs: list[list[Any]] = field(default_factory=list)   # [rel, mode, mtime_ns]: the same, but for the mode
    sizes: int = 0       # bytes of the files to send (as walked)
    skipped: int = 0     # files and symlinks already the same

    @property
    def needed(self) -> bool:
        return bool(self.dirs or self.files or self.links or self.attrs)


def plan(source: list[Entry], target: Manifest) -> Plan:
    """The quick check: what to send of ``source`` to a destination holding ``target``. Entries of the
    destination that the source does not have are left alone (as ``rsync -a`` does without --delete);
    sockets, FIFOs and devices are not copied."""
    work = Plan()
    changed: set[str] = set()  # directories whose content changes: their mtime must be set again
    for entry in sorted(source):
        have = target.get(entry.rel)
        if entry.kind == "d":
            if have is None or have.kind != "d":
                work.dirs.append([entry.rel, entry.mode, entry.mtime_ns])
                changed.add(_parent(entry.rel))
            elif have.mode != entry.mode or not same_time(have.mtime_ns, entry.mtime_ns):
                work.dirs.append([entry.rel, entry.mode, entry.mtime_ns])
        elif entry.kind == "f":
            if have is not None and have.kind == "f" and have.size == entry.size and \
                    same_time(have.mtime_ns, entry.mtime_ns):
                work.skipped += 1
                if have.mode != entry.mode:
                    work.attrs.append([entry.rel, entry.mode, entry.mtime_ns])
            else:
                work.files.append([entry.rel, entry.mode, entry.mtime_ns])
                work.sizes += entry.size
                changed.add(_parent(entry.rel))
        elif entry.kind == "l":
            if have is not None and have.kind == "l" and have.target == entry.target:
                work.skipped += 1
            else:
                work.links.append([entry.rel, entry.target, entry.mtime_ns])
                changed.add(_parent(entry.rel))
    listed = {item[0] for item in work.dirs}
    work.dirs += [[e.rel, e.mode, e.mtime_ns] for e in sorted(source)
                  if e.kind == "d" and e.rel in changed and e.rel not in listed]
    work.dirs.sort()
    return work


def same_time(a: int, b: int) -> bool:
    """mtimes as the quick check compares them: to the nanosecond, or to the second where one side keeps
    whole seconds only (some filesystems do)."""
    second = 1_000_000_000
    return a == b or ((a % second == 0 or b % second == 0) and a // second == b // second)


def _parent(rel: str) -> str:
    return posixpath.dirname(rel) if rel else "/"  # (the root's parent is outside the tree)
