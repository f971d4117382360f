"""How the views write: values as text, tables, CSV/TSV, JSON rows, and files replaced whole.

Shared by every view (``runs``, ``show``, ``compare``, ``export --csv``, the report). A table of 100,000 rows
goes through here, so the helpers it calls per row avoid repeated work (``clock_text`` caches strftime).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from typing import IO, Any, Callable, Iterable, Sequence

from .._durations import format_seconds
from . import jsonl


def compress_cores(cores: Sequence[int] | None) -> str:
    """[0, 1, 2, 3, 8] -> "0-3,8"."""
    if not cores:
        return ""
    cores = sorted(cores)
    parts = []
    first = previous = cores[0]
    for core in [*cores[1:], None]:
        if core is not None and core == previous + 1:
            previous = core
            continue
        parts.append(str(first) if first == previous else f"{first}-{previous}")
        if core is not None:
            first = previous = core
    return ",".join(parts)


def counts_text(counts: dict[str, int] | None) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted((counts or {}).items()))


def clock_text(epoch: float | None, date: bool = False) -> str:
    if epoch is None:
        return "-"
    if date:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
    second = int(epoch)
    text = _CLOCKS.get(second)
    if text is None:  # strftime costs microseconds, and a run's commands start within a few seconds
        text = _CLOCKS[second] = time.strftime("%H:%M:%S", time.localtime(second))
    return f"{text}.{int((epoch - second) * 10)}"


_CLOCKS: dict[int, str] = {}


def seconds_text(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} s" if value < 10 else format_seconds(value)


def kib_text(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{value:.0f}{unit}" if unit == "K" else f"{value:.1f}{unit}"
        value /= 1024  # type: ignore[assignment]
    return "-"


def rounded(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def short_path(path: str | None) -> str:
    if not path:
        return "-"
    home = os.path.expanduser("~")
    return "~" + path[len(home):] if path.startswith(home + os.sep) else path


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=1) + "\n")


def write_json_rows(stream: IO[str], head: dict[str, Any], key: str, rows: Iterable[dict[str, Any]]) -> None:
    """``{...head, key: [rows]}`` with one row per line: json's indenting encoder is pure Python, ten times
    slower than its compact one, and a row per line reads (and greps) well."""
    stream.write("{" + json.dumps(head)[1:-1] + f", {json.dumps(key)}: [")
    separator = "\n"
    for row in rows:
        stream.write(separator + jsonl.dumps(row))
        separator = ",\n"
    stream.write("\n]}\n")


def write_delimited(stream: IO[str], header: list[str], rows: Iterable[list[Any]], fmt: str) -> None:
    if fmt == "tsv":  # one line per row: tabs and newlines inside a value would break it
        stream.write("\t".join(header) + "\n")
        for row in rows:
            stream.write("\t".join(_tsv(v) for v in row) + "\n")
        return
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def _tsv(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def print_table(headers: Sequence[str], rows: list[list[str]]) -> None:
    sys.stdout.write(table_text(headers, rows) + "\n")


def table_text(headers: Sequence[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    columns = list(zip(headers, *rows))
    widths = [max(map(len, column)) for column in columns[:-1]]
    formats = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    lines = [formats.format(*row) for row in [headers, *rows]]
    return "\n".join(lines)


def cell(value: Any, key: str) -> Any:
    if key == "cores":
        return ",".join(map(str, value))
    if value is None:
        return ""
    return value


def write_atomically(path: str, write: Callable[[IO[str]], None]) -> None:
    """Write under a temporary name and rename: a failed export never leaves half a file under ``path``."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        # surrogateescape: a name made of undecodable bytes (a file name) is written back as those bytes
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape", newline="") as stream:
            write(stream)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
