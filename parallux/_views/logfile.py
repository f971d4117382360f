"""A run log's bytes: records put back on lines of their own, and the runs the file holds, one by one.

parallux writes every run into a file of its own (``_runlog``), but a log written before that could hold
several runs: a second run with the same ``--log FILE`` was appended to the first, and when the first had
been killed while writing, its torn last line had no newline, so the next run's first record began in the
middle of that line. Readers take such a file apart here: every record starts on a line of its own, and each
run is the lines from its ``run_started`` to the next one.
"""

from __future__ import annotations

import re
from typing import Any

from . import jsonl

RECORD = b'{"event":'
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
