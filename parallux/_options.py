"""Validation of everything a config passes in: command options, runner options, environments.

Every check raises :class:`ConfigError` at the call that received the bad value, naming it, so that a typo in
a 10,000-command campaign fails before the first command starts rather than an hour into the run.
"""

from __future__ import annotations

import math
import os
import posixpath
import shlex
from typing import Any, Mapping

from ._errors import ConfigError

COMMAND_OPTIONS = ("name", "threads", "numa_node", "cores", "env", "cwd", "work_relpath", "check", "timeout",
                   "runner", "retries", "retry_on", "inputs")
RETRYABLE_STATUSES = ("failed", "timeout", "error")


def check_option_names(options: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown option{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(map(repr, unknown))}; the options are: {', '.join(allowed)}")


def command_text(command: object) -> str:
    """The shell command line to run: a string as given, a list of arguments quoted with ``shlex.join``."""
    if isinstance(command, str):
        if not command.strip():
            raise ConfigError("the command is empty")
        return command
    if isinstance(command, (list, tuple)) and command:
        parts = [os.fspath(a) if isinstance(a, os.PathLike) else a for a in command]
        if not all(isinstance(a, str) for a in parts):
            bad = next(a for a in parts if not isinstance(a, str))
            raise ConfigError(f"every argument of a command list must be a str, not {type(bad).__name__} "
                              f"({bad!r}) in {list(command)!r}")
        return shlex.join(parts)
    raise ConfigError(f"a command is a shell command line (str) or a non-empty list of arguments, "
                      f"not {type(command).__name__}: {command!r}")


def positive_int(value: object, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be an int, not {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ConfigError(f"{what} must be >= {minimum}, not {value}")
    return value


def optional_int(value: object, what: str, minimum: int = 1) -> int | None:
    return None if value is None else positive_int(value, what, minimum)


def seconds(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} must be a number of seconds, not {type(value).__name__} ({value!r})")
    if not value > 0 or math.isinf(value) or math.isnan(value):
        raise ConfigError(f"{what} must be a positive number of seconds, not {value!r}")
    return float(value)


def boolean(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{what} must be True or False, not {value!r}")
    return value


def environment(value: object, what: str) -> dict[str, str]:
    """An env mapping of str to str; numbers are refused rather than guessed at."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be a dict of str to str, not {type(value).__name__}")
    for key, item in value.items():
        env_pair(key, item, what)
    return dict(value)


def env_pair(key: object, value: object, what: str) -> None:
    if not isinstance(key, str) or not key or "=" in key or "\0" in key:
        raise ConfigError(f"{what}: {key!r} is not a valid environment variable name")
    if not isinstance(value, str):
        raise ConfigError(f"{what}: the value of {key} must be a str, not {type(value).__name__} "
                          f"({value!r}); write {str(value)!r} if that is what you mean")
    if "\0" in value:
        raise ConfigError(f"{what}: the value of {key} contains a NUL byte")


def name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what} must be a non-empty str, not {value!r}")
    return value


def path(value: object, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} must be a path (str), not {value!r}")
    return value


def work_relpath(value: object) -> str:
    """A work_relpath: relative, without '..', normalised (``a//b/./c/`` -> ``a/b/c``)."""
    text = path(value, "work_relpath")
    assert text is not None
    if text.startswith("/") or text.startswith("~"):
        raise ConfigError(f"work_relpath must be relative to the runner's workspace, not {text!r}")
    if ".." in text.split("/"):
        raise ConfigError(f"work_relpath must not contain '..': {text!r}")
    normal = posixpath.normpath(text)
    if normal in (".", ""):
        raise ConfigError(f"work_relpath must name a directory inside the workspace, not {text!r}")
    return normal


def core_list(value: object) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"cores must be a list of core ids, not {value!r}")
    cores = tuple(value)  # type: ignore[arg-type]
    if not cores:
        raise ConfigError("cores must not be empty")
    for core in cores:
        if isinstance(core, bool) or not isinstance(core, int) or core < 0:
            raise ConfigError(f"cores must hold non-negative int core ids, not {core!r}")
    if len(set(cores)) != len(cores):
        raise ConfigError(f"cores lists a core twice: {list(cores)}")
    return tuple(sorted(cores))


def numa_node(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"numa_node must be an int node id, not {value!r}")
    return value


def threads_and_cores(threads: object, cores: object, threads_given: bool) -> tuple[int, tuple[int, ...] | None]:
    """``cores=[...]`` implies ``threads=len(cores)``; an explicit different ``threads`` is a contradiction."""
    core_ids = core_list(cores)
    count = positive_int(threads, "threads")
    if core_ids is not None:
        if threads_given and count != len(core_ids):
            raise ConfigError(f"threads={count} contradicts cores={list(core_ids)} ({len(core_ids)} cores)")
        count = len(core_ids)
    return count, core_ids


def retry_on(value: object, what: str = "retry_on") -> frozenset[str | int] | None:
    """The outcomes to retry: statuses ("failed", "timeout", "error") and exit statuses (ints, meaning
    "failed with that status"). None: the default, every one of the three statuses."""
    if value is None:
        return None
    items = [value] if isinstance(value, (str, int)) else value
    if isinstance(items, (bytes, dict)) or not hasattr(items, "__iter__"):
        raise ConfigError(f"{what} must be a collection of statuses {RETRYABLE_STATUSES} and exit statuses "
                          f"(int), not {value!r}")
    outcomes: set[str | int] = set()
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ConfigError(f"{what}: {item!r} is neither a status {RETRYABLE_STATUSES} nor an exit status (int)")
        if isinstance(item, str) and item not in RETRYABLE_STATUSES:
            raise ConfigError(f"{what}: {item!r} is not a status that can be retried; those are: "
                              f"{', '.join(RETRYABLE_STATUSES)}")
        if isinstance(item, int) and not 0 < item < 256:
            raise ConfigError(f"{what}: exit status {item} is out of range (1 to 255)")
        outcomes.add(item)
    return frozenset(outcomes)


def input_paths(value: object) -> tuple[str, ...]:
    """inputs=[path, ...]: local files or directories that must exist now; made absolute."""
    if value is None:
        return ()
    items = [value] if isinstance(value, (str, os.PathLike)) else value
    if isinstance(items, (bytes, dict)) or not hasattr(items, "__iter__"):
        raise ConfigError(f"inputs must be a list of paths, not {value!r}")
    paths = []
    for item in items:  # type: ignore[union-attr]
        text = path(item, "an entry of inputs")
        assert text is not None
        absolute = os.path.abspath(os.path.expanduser(text))
        if not os.path.exists(absolute):
            raise ConfigError(f"inputs: no such file or directory: {text!r}")
        paths.append(absolute)
    return tuple(dict.fromkeys(paths))


def safe_name(text: str, limit: int = 60) -> str:
    """Text made safe for a path component (used in generated work paths)."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in text)
    return cleaned.strip("._")[:limit]
