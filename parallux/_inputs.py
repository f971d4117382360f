"""``inputs=``: fingerprints of the local files a command depends on, so that ``--resume`` reruns it when its
program or its data changed.

A fingerprint is what rsync's quick check looks at: size and modification time (in ns). A file's is
``[size, mtime_ns]``; a directory's is the count and a SHA-256 of ``relpath size mtime_ns`` of every file
below it. The fingerprints go into the command's completion record; ``--resume`` skips a command only if
the record's fingerprints equal the current ones.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Any

from ._errors import ConfigError


class Fingerprints:
    """The fingerprints of one run. A file is looked at each time a command names it (one stat). A directory's
    walk is kept while its own mtime stays the same, so that 10,000 commands naming one data directory walk
    it once. That can only make a record's fingerprint older than the data the command read, never newer, so
    a stale one makes --resume rerun the command, never skip it wrongly."""

    def __init__(self) -> None:
        self._directories: dict[tuple[str, int], dict[str, Any]] = {}

    def of(self, paths: tuple[str, ...], missing_ok: bool = False) -> dict[str, Any]:
        """``missing_ok`` (a dry run): a path that is not there yet, made by a command that would run
        first, is fingerprinted as ``None`` and said in a plan line."""
        return {path: self._one(path, missing_ok) for path in paths}

    def _one(self, path: str, missing_ok: bool) -> Any:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            if not missing_ok:
                raise ConfigError(f"inputs: no such file or directory: {path!r}") from None
            print(f"inputs: {path} (not there yet: made by the run)", flush=True)
            return None
        except OSError as exc:
            raise ConfigError(f"inputs: cannot read {path!r}: {exc.strerror}") from exc
        if not stat.S_ISDIR(info.st_mode):
            return [info.st_size, info.st_mtime_ns]
        key = (path, info.st_mtime_ns)
        if key not in self._directories:
            self._directories[key] = directory_fingerprint(path)
        return self._directories[key]


def directory_fingerprint(root: str) -> dict[str, Any]:
    digest = hashlib.sha256()
    count = 0
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files):
            full = os.path.join(directory, name)
            try:
                info = os.lstat(full)
            except OSError:  # vanished while walking: its absence is part of the fingerprint
                continue
            relative = os.path.relpath(full, root)
            digest.update(f"{relative}\0{info.st_size}\0{info.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
            count += 1
    return {"files": count, "sha256": digest.hexdigest()}
