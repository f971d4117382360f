"""Turn input files into stable work paths: ``workloads()``.

A benchmark campaign runs one command per input file and wants each command's output in a directory derived
from that input, so a rerun (or ``--resume``) writes to the same place. ``workloads()`` is a pure function of
the file tree: it expands globs, keeps the last ``levels`` path components as the identity of each input and
refuses anything that would make two inputs share a work directory.
"""

from __future__ import annotations

import glob
import os
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ._errors import ConfigError
from ._options import checked

__all__ = ["Workload", "workloads"]

_GLOB_CHARS = re.compile(r"[*?[]")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Workload:
    """One input and the paths derived from it.

    ``input_path`` is absolute because the command runs in its own work dir, where a relative path would
    point nowhere.
    """

    input_path: str
    relpath: str
    work_relpath: str
    name: str


@checked("workloads()")
def workloads(
    patterns: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    levels: int,
    work_prefix: str = "",
    strip_suffix: bool = False,
) -> list[Workload]:
    """Expand ``patterns`` into workloads, sorted by absolute input path.

    Every mistake (no match, a missing path, two inputs sharing a work dir) is a :class:`ConfigError` raised
    here, before any command is registered: a campaign over the wrong inputs is expensive to notice later.
    """
    _check_levels(levels)
    if not isinstance(strip_suffix, bool):
        raise ConfigError(f"workloads(): strip_suffix must be True or False, not {strip_suffix!r}")
    prefix = _normalise_prefix(work_prefix)
    paths = sorted({path for pattern in _pattern_list(patterns) for path in _expand(pattern)})
    result = [_workload(path, levels, prefix, strip_suffix) for path in paths]
    _check_unique(result)
    return result


def _check_levels(levels: object) -> None:
    # bool is an int subclass, but levels=True is surely a mistake, not "1".
    if isinstance(levels, bool) or not isinstance(levels, int):
        raise ConfigError(f"workloads(): levels must be an int >= 1, not {levels!r}")
    if levels < 1:
        raise ConfigError(f"workloads(): levels must be >= 1, not {levels}")


def _normalise_prefix(work_prefix: object) -> str:
    """The prefix in posix form without '.', '//' or a trailing slash; '' when empty.

    The checks run on the raw text: normalising first would hide ``a/../..`` behind a harmless-looking path.
    """
    if not isinstance(work_prefix, str):
        raise ConfigError(f"workloads(): work_prefix must be a str, not {type(work_prefix).__name__}")
    if posixpath.isabs(work_prefix) or os.path.isabs(work_prefix):
        raise ConfigError(f"workloads(): work_prefix must be relative, not {work_prefix!r}")
    if ".." in work_prefix.replace(os.sep, "/").split("/"):
        raise ConfigError(f"workloads(): work_prefix must not contain '..': {work_prefix!r}")
    normalised = posixpath.normpath(work_prefix.replace(os.sep, "/")) if work_prefix else ""
    return "" if normalised == "." else normalised


def _pattern_list(patterns: object) -> list[str]:
    # A str is itself iterable, so one pattern must be recognised before treating the argument as a list.
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    if isinstance(patterns, bytes) or not isinstance(patterns, Iterable):
        raise ConfigError(f"workloads(): patterns must be a path, a glob or a list of them, not {patterns!r}")
    result = [_pattern_text(pattern) for pattern in patterns]
    if not result:
        raise ConfigError("workloads(): no patterns given; a campaign over zero inputs is almost surely a mistake")
    return result


def _pattern_text(pattern: object) -> str:
    text = os.fspath(pattern) if isinstance(pattern, os.PathLike) else pattern
    if not isinstance(text, str) or not text:
        raise ConfigError(f"workloads(): each pattern must be a non-empty str or path, not {pattern!r}")
    return text


def _expand(pattern: str) -> list[str]:
    """Absolute, normalised paths matched by ``pattern`` (relative to the current directory).

    Zero matches is an error: it is almost always a typo in the pattern, not an intended empty campaign. A
    relative pattern's error names the directory it was taken from: parallux started elsewhere than the
    config's directory is the usual reason.
    """
    if not _GLOB_CHARS.search(pattern):
        if not os.path.exists(pattern):
            raise ConfigError(f"workloads(): input path {pattern!r} does not exist{_relative_to(pattern)}")
        return [os.path.abspath(pattern)]
    matches = glob.glob(pattern, recursive=True)
    if not matches:
        raise ConfigError(f"workloads(): pattern {pattern!r} matches no file{_relative_to(pattern)}")
    return [os.path.abspath(match) for match in matches]


def _relative_to(pattern: str) -> str:
    if os.path.isabs(pattern):
        return ""
    return f" (relative to {os.getcwd()}, the directory parallux was started in)"


def _workload(path: str, levels: int, prefix: str, strip_suffix: bool) -> Workload:
    relpath = _relpath(path, levels, strip_suffix)
    work_relpath = f"{prefix}/{relpath}" if prefix else relpath
    return Workload(path, relpath, work_relpath, _UNSAFE_NAME_CHARS.sub("_", relpath))


def _relpath(path: str, levels: int, strip_suffix: bool) -> str:
    """The last ``levels`` components of ``path``, '/'-joined; they are what identifies the input."""
    components = [part for part in path.replace(os.sep, "/").split("/") if part]
    if len(components) < levels:
        raise ConfigError(f"workloads(): input path {path!r} has {len(components)} components, "
                          f"fewer than levels={levels}")
    kept = components[-levels:]
    if strip_suffix:
        # splitext keeps '.hidden' whole and strips only the last suffix: 'a.tar.gz' -> 'a.tar'.
        kept[-1] = posixpath.splitext(kept[-1])[0]
    return "/".join(kept)


def _check_unique(found: list[Workload]) -> None:
    """Two inputs sharing a work dir would overwrite each other's results, silently."""
    seen: dict[str, Workload] = {}
    for workload in found:
        other = seen.setdefault(workload.work_relpath, workload)
        if other is not workload:
            raise ConfigError(f"workloads(): inputs {other.input_path!r} and {workload.input_path!r} both map "
                              f"to work_relpath {workload.work_relpath!r}; raise levels or keep suffixes")
