"""NUL bytes, refused where a config passes them in.

A NUL byte ends a C string: no argv, environment variable or path can hold one, and the OS call that meets it
fails (``ValueError: embedded null byte``) in the engine, once other commands are already running. So every
call that takes a command, an argument, a path, a name or a variable refuses one at once, with a ConfigError
that says which argument holds it and where: ``env['A'] contains a NUL byte at index 1: 'x\\x00'``.
``_options.checked`` does it for every checked call; ``schd()``/``run()`` do it for their command and options.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping

from ._errors import ConfigError

SHOWN = 20  # characters shown each side of a NUL byte: a 1 MB command is not printed whole
DEPTH = 4   # how deep lists and dicts are looked into (a list that contains itself must not loop)


def refuse_nuls(named: Iterable[tuple[str, Any]], where: str = "") -> None:
    """Refuse a NUL byte in any of these ``(name, value)`` arguments, naming the first one's place."""
    for what, value in named:
        problem = nul_problem(value, what)
        if problem is not None:
            raise ConfigError(f"{where}: {problem}" if where else problem)


def nul_problem(value: object, what: str, depth: int = 0) -> str | None:
    """Where in ``value`` -- a str, bytes, a path, or a list, tuple or dict of them (keys too) -- a NUL byte
    is; None when there is none. Nothing else is looked into: iterating a generator would consume it."""
    if type(value) is str:  # (nearly every value: before the slower isinstance checks)
        return _found(value, value.find("\0"), what) if "\0" in value else None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        return _found(value, value.find("\0"), what)
    if isinstance(value, bytes):
        return _found(value, value.find(b"\0"), what)
    if depth >= DEPTH:
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            problem = nul_problem(item, f"{what}[{index}]", depth + 1)
            if problem is not None:
                return problem
    elif isinstance(value, Mapping):
        for key, item in value.items():
            problem = nul_problem(key, f"a key of {what}", depth + 1) or nul_problem(item, f"{what}[{key!r}]",
                                                                                     depth + 1)
            if problem is not None:
                return problem
    return None


def _found(text: str | bytes, index: int, what: str) -> str | None:
    if index < 0:
        return None
    start, end = max(0, index - SHOWN), index + SHOWN + 1
    shown = ("..." if start else "") + repr(text[start:end]) + ("..." if end < len(text) else "")
    return f"{what} contains a NUL byte at index {index}: {shown}"
