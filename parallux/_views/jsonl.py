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



def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not a number a run log holds")


# NaN and Infinity are not JSON (orjson refuses them; json takes them unless told not to)
_decode = json.JSONDecoder(parse_constant=_refuse).raw_decode


def split_lines(data: bytes) -> list[Any]:
    """The lines of a JSON-lines file, as ``loads`` takes them (bytes for orjson, str otherwise)."""
    if orjson is not None:
        return data.split(b"\n")
    return data.decode("utf-8", "replace").split("\n")


def loads(line: bytes | str) -> Any:
    """One JSON value; ValueError when the line is not one (a half-written last line, two glued together,
    a nesting too deep, or a lone surrogate that no file name could have given: see ``_strict``)."""
    if orjson is not None:
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            if isinstance(line, bytes):
                line = line.decode("utf-8", "replace")
    return _strict(line)  # type: ignore[arg-type]


def _strict(line: str) -> Any:
    """What orjson refused, through json: the whole line one value, its text writable back as a name's bytes
    (``surrogateescape`` holds \\udc80-\\udcff, what undecodable bytes of a file name become, and no other)."""
    try:
        value, end = _decode(line)
    except RecursionError as exc:
        raise ValueError("nested too deep") from exc
    if line[end:].strip():
        raise ValueError("more than one value on the line")
    json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogateescape")  # UnicodeEncodeError: a ValueError
    return value


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
