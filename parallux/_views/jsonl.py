"""JSON for the views of big runs: orjson when it is installed, the standard library otherwise.

Reading back a 100,000-command run is 300,000 JSON lines; orjson parses them two to three times faster than
``json`` and writes the report's data several times faster, which is what keeps ``parallux show`` and
``report`` within a few seconds. Both give the same values: orjson refuses some inputs ``json`` accepts
(lone surrogates, which a command line built from undecodable file names may hold), and those fall back to
``json``.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - depends on the installation
    orjson = None

_decode = json.JSONDecoder().raw_decode


def split_lines(data: bytes) -> list[Any]:
    """The lines of a JSON-lines file, as ``loads`` takes them (bytes for orjson, str otherwise)."""
    if orjson is not None:
        return data.split(b"\n")
    return data.decode("utf-8", "replace").split("\n")


def loads(line: bytes | str) -> Any:
    """One JSON value; ValueError when the line is not (a half-written last line)."""
    if orjson is not None:
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            if isinstance(line, bytes):
                line = line.decode("utf-8", "replace")
    return _decode(line)[0]


def prefix(text: str, like: bytes | str) -> bytes | str:
    """``text`` as the same type as the lines ``split_lines`` gave (to compare with ``startswith``)."""
    return text.encode() if isinstance(like, bytes) else text


def dumps(value: Any) -> str:
    """Compact JSON; UTF-8 characters kept as they are, unless a lone surrogate needs escaping."""
    if orjson is not None:
        try:
            return orjson.dumps(value).decode("utf-8")
        except TypeError:  # a str with lone surrogates: json escapes them (as \\udcff, which JSON allows)
            return json.dumps(value, separators=(",", ":"))
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def without_orjson() -> Any:
    """For tests: a context in which the standard library's json is used."""
    import contextlib

    @contextlib.contextmanager
    def context() -> Any:
        global orjson
        saved, orjson = orjson, None
        try:
            yield
        finally:
            orjson = saved
    return context()
