"""A run log's bytes: records put back on lines of their own, and the runs the file holds, one by one.

parallux writes every run into a file of its own (``_runlog``), but a log written before that could hold
several runs: a second run with the same ``--log FILE`` was appended to the first, and when the first had
been killed while writing, its torn last line had no newline, so the next run's first record began in the
middle of that line. Readers take such a file apart here: every record starts on a line of its own, and each
run is the lines from its ``run_started`` to the next one.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from typing import Any, BinaryIO, Iterator

from . import jsonl
from .records import HistoryError

RECORD = b'{"event":'
BLOCK = 1 << 22  # bytes of a log read at once when it is read a block at a time (its records: some 6x that)
RUN_STARTED = b'{"event":"run_started"'
_MID_LINE = re.compile(rb'(?<=[^\n])\{"event":')


def resync(data: Any) -> Any:
    """``data`` with a newline before every record that begins in the middle of a line (after a torn one).
    Our records are compact JSON with ``event`` first; ``{"event":`` cannot appear inside one (its quotes
    would be escaped in a string). Two counts in C find the common case, where there is nothing to do."""
    at_line_starts = data.count(b"\n" + RECORD) + (data[:len(RECORD)] == RECORD)
    if data.count(RECORD) == at_line_starts:
        return data
    return _MID_LINE.sub(b"\n" + RECORD, data)


def run_started_lines(data: Any) -> list[int]:
    """Where each ``run_started`` record of the file begins (also one that begins after a torn line)."""
    found = []
    at = data.find(RUN_STARTED)
    while at >= 0:
        found.append(at)
        at = data.find(RUN_STARTED, at + 1)
    return found


def run_id_at(data: Any, start: int) -> str | None:
    """The run id of the ``run_started`` record at ``start`` (None: it has none, or it is unreadable)."""
    end = data.find(b"\n", start)
    try:
        record = jsonl.loads(data[start:end if end >= 0 else len(data)])
    except ValueError:
        return None
    run_id = record.get("run_id") if isinstance(record, dict) else None
    return run_id if isinstance(run_id, str) else None


class Runs:
    """The runs a log holds: each from its ``run_started`` to the next (the first from the file's start), and
    their ids."""

    def __init__(self, data: Any) -> None:
        found = run_started_lines(data)
        starts = [0, *found[1:]]
        self.ranges = list(zip(starts, [*starts[1:], len(data)]))
        self.ids = [run_id_at(data, at) for at in found] if len(found) > 1 else [None]

    def pick(self, wanted: str) -> tuple[int, int, list[str]]:
        """The byte range of the run ``wanted`` (a file's stem: a run id, in the history); else of the file's
        last run, and then the ids of the others it holds (to say so)."""
        if wanted in self.ids:
            return (*self.ranges[self.ids.index(wanted)], [])
        return (*self.ranges[-1], [run_id for run_id in self.ids[:-1] if run_id])

    def find(self, wanted: str) -> tuple[int, int] | None:
        """The byte range of the run ``wanted``, or of the file's only run (None: several, none of them it)."""
        if len(self.ranges) == 1:
            return self.ranges[0]
        return self.ranges[self.ids.index(wanted)] if wanted in self.ids else None


def open_log(path: str) -> BinaryIO:
    """A log open to read: a regular file only (O_NONBLOCK: a FIFO that took a --log file's place must not
    block)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    f = open(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise OSError(errno.EINVAL, "not a regular file")
    return f


def log_range(path: str) -> tuple[int, int, list[str], int]:
    """What ``load_run`` reads of a log, found a block at a time: the byte range of its run, the ids of the
    other runs the file holds, and the number of the run's first line. (Only a log from before each run had
    a file of its own holds several runs; such a file is small, and is read whole.)"""
    try:
        with open_log(path) as f:
            found, offset, tail = 0, 0, b""
            while found < 2 and (block := f.read(BLOCK)):
                found += (tail + block).count(RUN_STARTED)
                offset += len(block)
                tail = block[-len(RUN_STARTED) + 1:]
    except OSError as exc:
        raise HistoryError(f"cannot read the run log {path}: {exc.strerror}") from exc
    if found < 2:
        return 0, offset, [], 1
    with open_log(path) as f:
        data = f.read()
    start, end, others = Runs(data).pick(os.path.splitext(os.path.basename(path))[0])
    return start, end, others, data.count(b"\n", 0, start) + 1


def read_blocks(path: str, start: int, end: int) -> Iterator[tuple[bytes, bool]]:
    """Bytes ``start`` to ``end`` of a log, a block of whole lines at a time (without the newline that ends
    the block), and whether the block is the last (whose last line may be half written)."""
    try:
        f = open_log(path)
    except OSError as exc:
        raise HistoryError(f"cannot read the run log {path}: {exc.strerror}") from exc
    with f:
        f.seek(start)
        left, carry = end - start, b""
        while left > 0:
            block = f.read(min(BLOCK, left))
            if not block:
                break
            left -= len(block)
            data = carry + block
            cut = data.rfind(b"\n") if left > 0 else len(data)
            if cut < 0:
                carry = data
                continue
            carry = data[cut + 1:]
            yield data[:cut], left <= 0 and not carry
        if carry:
            yield carry, True
