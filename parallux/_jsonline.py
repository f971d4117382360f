"""JSON lines on the hot path of every command: the launcher requests, its events, the run log's records.

orjson (a dependency) encodes a request or a record in about a tenth of the time ``json.dumps`` takes and
parses an event in a quarter, which at thousands of commands a second is much of the engine's own time. It
refuses what ``json`` takes and parallux may hold: a lone surrogate (what ``surrogateescape`` makes of an
undecodable byte in a file name or a command line), an integer beyond 64 bits, a key that is not a string;
those go through ``json``, so every value that was written before is written now. (It writes NaN as null,
where ``json`` wrote ``NaN``, which no JSON reader, the views included, accepts.) A leaf: it imports nothing
of parallux.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps_line(value: Any) -> bytes:
    """One compact JSON line, newline included, in UTF-8."""
    try:
        return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # (orjson.JSONEncodeError is one) what orjson refuses: see above
        return (json.dumps(value, separators=(",", ":")) + "\n").encode("utf-8", "surrogateescape")


def loads(line: bytes) -> Any:
    """One JSON value from a line of UTF-8; ValueError when it is not one."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:  # (a ValueError) perhaps only a lone surrogate's escape, which json takes
        return json.loads(line.decode("utf-8"))
