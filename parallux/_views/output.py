"""How the views write: values as text, tables, CSV/TSV and JSON rows (where files go: ``target``).

Shared by every view (``runs``, ``show``, ``compare``, ``export --csv``, the report). A table of 100,000 rows
goes through here, so the helpers it calls per row avoid repeated work (``clock_text`` caches strftime).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from typing import IO, Any, Iterable, Sequence

from .._durations import format_seconds
from .._printable import printable_all
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
    write_json_lists(stream, head, {key: rows})


def write_json_lists(stream: IO[str], head: dict[str, Any], lists: dict[str, Iterable[dict[str, Any]]]) -> None:
    """``{...head, key: [rows], ...}``, each list's rows one per line (``write_json_rows``)."""
    stream.write("{" + json.dumps(head)[1:-1])
    for key, rows in lists.items():
        stream.write(f", {json.dumps(key)}: [")
        separator = "\n"
        for row in rows:
            stream.write(separator + jsonl.dumps(row))
            separator = ",\n"
        stream.write("\n]")
    stream.write("}\n")


def write_delimited(stream: IO[str], header: list[str], rows: Iterable[list[Any]], fmt: str) -> None:
    """CSV or TSV; a text cell a spreadsheet would run as a formula is written with a leading ``'``."""
    if fmt == "tsv":  # one line per row: tabs and newlines inside a value would break it
        stream.write("\t".join(header) + "\n")
        for row in rows:
            stream.write("\t".join(_tsv(v) for v in _inert(row)) + "\n")
        return
    write = csv.writer(stream, lineterminator="\n").writerow
    write(header)
    for row in rows:
        cells = _inert(row)
        if "\r" in "".join([v for v in cells if type(v) is str]):
            _write_with_cr(stream, cells)
        else:
            write(cells)


# The first characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection"). Only text
# is neutralised: a number field (an exit status, a duration) is written as the number, a negative one too.
_FORMULA_STARTS = frozenset("=+-@\t\r")


def _inert(row: list[Any]) -> list[Any]:
    return [("'" + v if v[:1] in _FORMULA_STARTS else v) if type(v) is str else v for v in row]


def _write_with_cr(stream: IO[str], cells: list[Any]) -> None:
    """A row with a carriage return in a cell: csv quotes only cells holding a character of its line
    terminator, so the row is written with "\r\n" (the cell quoted) and ended with "\n" like the others."""
    line = io.StringIO()
    csv.writer(line, lineterminator="\r\n").writerow(cells)
    stream.write(line.getvalue()[:-2] + "\n")


def _tsv(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def print_table(headers: Sequence[str], rows: list[list[str]]) -> None:
    sys.stdout.write(table_text(headers, rows) + "\n")


def table_text(headers: Sequence[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; the last column is not padded. Control characters are escaped:
    a name may hold a terminal's escape sequences."""
    columns = [printable_all(column) for column in zip(headers, *rows)]
    widths = [max(map(len, column)) for column in columns[:-1]]
    formats = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    lines = [formats.format(*row) for row in zip(*columns)]
    return "\n".join(lines)


def cell(value: Any, key: str) -> Any:
    if key in ("cores", "gpus"):
        return ",".join(map(str, value))
    if key == "metrics":  # name -> value, as one JSON object: a CSV cell per command, whatever it reports
        return json.dumps(value, sort_keys=True, separators=(",", ":")) if value else ""
    if key == "after":  # the dependencies' seqs: the rows of the same output
        return ",".join(str(dependency["seq"]) for dependency in value)
    if value is None:
        return ""
    return value
