"""A run log read in one pass, a block at a time, into columns: a few numbers per command and per attempt.

``reader.load_run`` builds an object per command and per attempt (about a kilobyte each, with their strings)
and holds the log's bytes while it does: right for a table of every command, too much for a run of a million
(a 750 MB log). A :class:`Scan` reads the same records -- each checked as the reader's strict reading checks
it (``schema.records_fit`` for a block at once, ``problem`` one by one where that fails), so both skip the
same ones -- into numpy columns, about 40 bytes an attempt, and works out each command's state from them at
the end (what the reader's events do one by one). ``show --slowest/--failed`` picks the few commands it
prints from them (and reads just those in full: ``load_run(path, only=seqs)``); the report of a big run
draws its aggregates from them.

Like the reader, it reads a ``started`` line only when no end of its attempt follows (the attempt still
runs): the end repeats its fields.
"""

from __future__ import annotations

import os
from collections import Counter
from itertools import repeat
from typing import Any

import numpy as np

from . import jsonl
from .logfile import log_range, read_blocks
from .reader import last_time, load_lines, seq_of
from .records import HistoryError, Run
from .schema import END_COLUMNS, QUEUED_COLUMNS, columns_fit, problem

_STARTED = b'{"event":"started",'
# the columns of an attempt's end (retrying, finished) or start (one still running at the log's end)
_FIELDS = ("seq", "time", "start", "end", "status", "runner", "host", "resumed", "event")


class Scan:
    """A run's columns. Attempts: every end of one (in the log's order), then the starts of those still
    running; ``listed`` those that ran in this run (the reader's ``Run.attempts()``). Commands: by seq."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.info: dict[str, Any] = {}
        self.runners: dict[str, dict[str, Any]] = {}
        self.finished: dict[str, Any] | None = None
        self.benchmarked = False  # a benchmark event, or an execution of one
        self.last_time: float | None = None
        self.skipped = 0
        self.problems: list[tuple[int, str]] = []
        self.other_runs: list[str] = []
        self.metrics: set[str] = set()  # the metrics of the commands' last attempts
        self.cores: dict[int, list[int]] = {}  # attempt -> its cores, for those that had some
        # per block, arrays of: the attempts (at: where its line is), and the queued records
        self._columns: dict[str, list[np.ndarray]] = {name: [] for name in (*_FIELDS, "at")}
        self._queued: dict[str, list[np.ndarray]] = {"seq": [], "time": [], "at": []}
        self._names: dict[str, dict[Any, int]] = {"status": {}, "runner": {}, "host": {}}  # text -> its code
        self._attempts = 0
        self.other_lines: list[int] = []  # where the records of no command are (run_started, runner, ...)
        self._pending: dict[int, tuple[int, Any]] = {}  # seq -> (line number, its started line not yet ended)
        self._retry_metrics: dict[int, list[str]] = {}

    # -- reading -----------------------------------------------------------------------------------------

    def read(self) -> Scan:
        start, end, self.other_runs, first_line = log_range(self.path)
        number, offset = first_line, start
        last_lines: list[Any] = []
        for data, torn_end in read_blocks(self.path, start, end):
            lines = jsonl.split_lines(data)
            self._block(lines, number, offset, torn_end)
            number += len(lines)
            offset += len(data) + 1
            last_lines = (last_lines + lines[-50:])[-50:]
        running, running_at = [], []
        for at, line in sorted(self._pending.values()):
            record = self._record(0, line, False)
            if record is None and self.problems and self.problems[-1][0] == 0:
                self.problems[-1] = (self._line_number(at, first_line, start), self.problems[-1][1])
            elif record is not None:
                running.append(record)
                running_at.append(at)
        self._pending.clear()
        self._add(running, running_at, running=True)
        self._range = (start, end, first_line)
        self.last_time = last_time(last_lines)
        self._resolve()
        return self

    def _line_number(self, at: int, first_line: int, start: int) -> int:
        """The number of the line at byte ``at`` (only for a problem: the log is read again up to there)."""
        count = first_line
        for data, _ in read_blocks(self.path, start, at):
            count += data.count(b"\n") + 1
        return count

    def _ended(self, ends: list[dict[str, Any]], positions: list[int]) -> None:
        """An end takes its attempt's start out of the pending ones when it follows it (a later start
        stays)."""
        pending = self._pending
        for seq, at in zip(map(dict.__getitem__, ends, repeat("seq")), positions):
            waiting = pending.get(seq)
            if waiting is not None and waiting[0] < at:
                del pending[seq]

    def _block(self, lines: list[Any], first: int, offset: int, torn_end: bool) -> None:
        """A block read line by line: the started ones put aside, the others parsed and checked all at once
        (each on its own only if that fails), then taken by kind."""
        started = _STARTED if not lines or isinstance(lines[0], bytes) else _STARTED.decode()
        lengths = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines)) + 1
        at = (offset + np.concatenate([[0], np.cumsum(lengths)])).tolist()  # (where each line starts)
        starts = [i for i, line in enumerate(lines) if line.startswith(started)]
        others = [i for i, line in enumerate(lines) if line and not line.startswith(started)]
        records = _parsed([lines[i] for i in others])
        if records is None or not _fit(records):
            records = [self._record(first + i, lines[i], torn_end and i == len(lines) - 1) for i in others]
        pending = self._pending
        for i in starts:
            seq = seq_of(lines[i])
            if seq is None:  # (not as parallux writes it: read in full, to know its seq)
                others.append(i)
                records.append(self._record(first + i, lines[i], False))
            else:
                pending[seq] = (at[i], lines[i])
        ends, positions, queued, queued_at = [], [], [], []
        for i, record in zip(others, records):
            event = record and record["event"]
            if event == "finished" or event == "retrying":
                ends.append(record)
                positions.append(at[i])
            elif event == "started":
                waiting = pending.get(record["seq"])
                if waiting is None or waiting[0] < at[i]:
                    pending[record["seq"]] = (at[i], lines[i])
            elif event == "queued":
                queued.append(record)
                queued_at.append(at[i])
            elif record is not None:
                self.other_lines.append(at[i])
                self._other(record)
        self._queued["seq"].append(np.array(list(map(dict.__getitem__, queued, repeat("seq"))), dtype=np.int64))
        self._queued["time"].append(_floats(list(map(dict.get, queued, repeat("time")))))
        self._queued["at"].append(np.array(queued_at, dtype=np.int64))
        self.benchmarked = self.benchmarked or any(map(dict.get, queued, repeat("bench")))
        self._ended(ends, positions)
        self._add(ends, positions)

    def _add(self, records: list[dict[str, Any]], positions: list[int], running: bool = False) -> None:
        """A block's ends (or the starts still running) into the columns, as arrays (about 50 bytes an
        attempt: a million in the log are no million objects here)."""
        columns, first = self._columns, self._attempts
        self._attempts += len(records)
        get = dict.get

        def column(name: str) -> list[Any]:
            return list(map(get, records, repeat(name)))

        columns["seq"].append(np.array(column("seq"), dtype=np.int64))
        columns["at"].append(np.array(positions, dtype=np.int64))
        columns["time"].append(_floats(column("time")))
        columns["start"].append(_floats(column("time" if running else "start")))
        columns["end"].append(_floats(column("end")))
        columns["status"].append(self._coded("status", [s or "error" for s in column("status")]))
        columns["runner"].append(self._coded("runner", column("runner")))
        columns["host"].append(self._coded("host", column("host")))
        columns["resumed"].append(np.array(list(map(bool, column("resumed"))), dtype=bool))
        kinds = [_RUNNING] * len(records) if running else [_KINDS[e] for e in column("event")]
        columns["event"].append(np.array(kinds, dtype=np.int8))
        for offset, record in enumerate(records):
            if get(record, "cores"):
                self.cores[first + offset] = record["cores"]
            if get(record, "metrics"):
                (self.metrics.update if record["event"] == "finished" else self._note_retry)(record)

    def _coded(self, name: str, values: list[Any]) -> np.ndarray:
        """Text as codes: each value's index among the distinct values of the column seen so far."""
        codes = self._names[name]
        return np.array([codes.setdefault(v, len(codes)) for v in values], dtype=np.int32)

    def _note_retry(self, record: dict[str, Any]) -> None:
        self._retry_metrics[record["seq"]] = list(record["metrics"])

    def _other(self, record: dict[str, Any] | None) -> None:
        if record is None:
            return
        event = record["event"]
        if event == "run_started":
            self.info = record
        elif event == "runner":
            self.runners[record["name"]] = record
        elif event == "run_finished":
            self.finished = record
        elif event == "benchmark":
            self.benchmarked = True

    def _record(self, number: int, line: Any, last: bool) -> dict[str, Any] | None:
        try:
            record = jsonl.loads(line)
        except ValueError:
            self.skipped += 1
            if not last:  # (the last line of a run still going: being written, not torn)
                self.problems.append((number, "not a JSON record (a torn line?)"))
            return None
        why = problem(record)
        if why is not None:
            self.problems.append((number, why))
            return None
        return record

    # -- each command's state, from the columns ----------------------------------------------------------

    def _resolve(self) -> None:
        """What the reader's events do one by one, over the columns at once: an attempt that ended is listed
        when it ran here (not resumed, a start); a command's status is its last event's (a retry: queued);
        its row shows how it ended, else its last listed attempt."""
        c = {name: _joined(arrays, name) for name, arrays in self._columns.items()}
        self._columns = {}
        kind = c["event"]
        self.attempt_seq, self.attempt_at, self.start = c["seq"], c["at"], c["start"]
        times = c["time"]
        self.end = np.where(np.isnan(c["end"]), times, c["end"])
        self.end[kind == _RUNNING] = np.nan
        codes = self._names["status"]
        queued_code, running_code = codes.setdefault("queued", len(codes)), codes.setdefault("running", len(codes))
        self.status_names = list(codes)
        self.attempt_status = c["status"]
        self.attempt_status[kind == _RUNNING] = running_code
        self.runner_names, self.attempt_runner = list(self._names["runner"]), c["runner"]
        self.host_names, self.attempt_host = list(self._names["host"]), c["host"]
        resumed = c["resumed"]
        self.listed = ~resumed & ~np.isnan(self.start) | (kind == _RUNNING)
        queued_seq = _joined(self._queued["seq"], "seq")
        self.queued_at, self.queued_seq = _joined(self._queued["at"], "at"), queued_seq
        self.seq = np.unique(np.concatenate([queued_seq, self.attempt_seq]))
        self.command = np.searchsorted(self.seq, self.attempt_seq)
        n = len(self.seq)
        self.queued = np.full(n, np.nan)
        self.queued[np.searchsorted(self.seq, queued_seq)] = _joined(self._queued["time"], "time")

        everything = np.arange(len(kind))
        self.last = _last_per(self.command[self.listed], everything[self.listed], n)
        finished = kind == _FINISHED
        self.ended = _last_per(self.command[finished], everything[finished], n)
        latest = _last_per(self.command, everything, n)
        has = latest >= 0
        self.status = np.full(n, queued_code, dtype=np.int32)
        self.status[has] = np.where(kind[latest[has]] == _RETRYING, queued_code,
                                    self.attempt_status[latest[has]])
        self.attempt_count = np.bincount(self.command[self.listed], minlength=n)
        self.resumed = np.zeros(n, dtype=bool)
        ended = self.ended >= 0
        self.resumed[ended] = resumed[self.ended[ended]]
        self.finished_at = np.full(n, np.nan)
        self.finished_at[ended] = times[self.ended[ended]]
        retried = ~ended & (self.status != running_code)  # (a command running again has no metrics yet)
        unfinished = set(self.seq[retried].tolist()) if self._retry_metrics else set()
        self.metrics.update(m for seq, names in self._retry_metrics.items() if seq in unfinished for m in names)
        self.hosts = {self.host_names[h] for h in np.unique(self.attempt_host[self.listed])} - {None, ""}

    # -- what the views read -----------------------------------------------------------------------------

    def final(self) -> np.ndarray:
        """Per command, the attempt its row shows: how it ended, else its last listed one (-1: none)."""
        return np.where(self.ended >= 0, self.ended, self.last)

    def durations(self) -> np.ndarray:
        final = self.final()
        out = np.full(len(self.seq), np.nan)
        some = final >= 0
        out[some] = self.end[final[some]] - self.start[final[some]]
        return out

    def failed(self) -> np.ndarray:
        good = [i for i, name in enumerate(self.status_names) if name in ("ok", "running", "queued")]
        return ~np.isin(self.status, good)

    def select(self, failed: bool = False, slowest: int | None = None) -> list[int]:
        """The seqs of the commands ``show.select`` picks: those that did not end ok; the longest ``slowest``
        (longest first, in submission order among equals)."""
        chosen = self.failed() if failed else np.ones(len(self.seq), dtype=bool)
        if slowest is None:
            return self.seq[chosen].tolist()
        durations = self.durations()
        chosen &= ~np.isnan(durations)
        order = np.lexsort((self.seq[chosen], -durations[chosen]))[:slowest]
        return self.seq[chosen][order].tolist()

    def load(self, seqs: list[int]) -> Run:
        """The run with these commands alone, each read in full from its lines (where this pass found them)
        and checked as ``load_run`` checks a log; what is counted over every command, from the columns."""
        where = os.path.realpath(self.path)
        if not self.info and not len(self.seq):
            raise HistoryError(f"{where} is not a parallux run log (no run_started event)")
        wanted = np.array(sorted(seqs), dtype=np.int64)
        if not self.info and not len(wanted):  # (no line of the run to read: its run_started is gone)
            run = Run(where, {}, self.runners, [], self.finished, None, other_runs=self.other_runs)
        else:
            offsets = np.concatenate([self.queued_at[np.isin(self.queued_seq, wanted)],
                                      self.attempt_at[np.isin(self.attempt_seq, wanted)],
                                      np.array(self.other_lines, dtype=np.int64)])
            run = load_lines(self.path, np.unique(offsets).tolist(), self.other_runs)
        run.totals = self.totals()
        run.last_time, run.skipped_lines, run.problems = self.last_time, self.skipped, self.problems
        return run

    def totals(self) -> dict[str, Any]:
        """What ``Run.summary()`` counts over every command."""
        counts = Counter(self.status.tolist())
        return {"commands": len(self.seq), "counts": {self.status_names[code]: n for code, n in counts.items()},
                "retries": int(np.maximum(self.attempt_count - 1, 0).sum()), "resumed": int(self.resumed.sum()),
                "hosts": self.hosts, "metrics": self.metrics}


_FINISHED, _RETRYING, _RUNNING = 0, 1, 2
_KINDS = {"finished": _FINISHED, "retrying": _RETRYING, "started": _RUNNING}


def _floats(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


_TYPES = {"seq": np.int64, "at": np.int64, "time": np.float64, "start": np.float64, "end": np.float64,
          "status": np.int32, "runner": np.int32, "host": np.int32, "resumed": bool, "event": np.int8}


def _joined(arrays: list[np.ndarray], name: str) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=_TYPES[name])


def _last_per(groups: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per group 0..n-1, the last of its values (-1: none); ``values`` increase."""
    out = np.full(n, -1, dtype=np.int64)
    out[groups] = values  # (numpy assigns in order: the last one stays)
    return out


def _fit(records: list[Any]) -> bool:
    """Do the records of a block hold what is read of them (``schema.columns_fit``)? A record of another
    event than queued, retrying or finished (a few a run) is checked on its own (``problem``)."""
    if set(map(type, records)) - {dict}:
        return False
    events = list(map(dict.get, records, repeat("event")))
    queued = [r for r, e in zip(records, events) if e == "queued"]
    ends = [r for r, e in zip(records, events) if e == "finished" or e == "retrying"]
    if len(queued) + len(ends) < len(records):
        if any(problem(r) is not None for r, e in zip(records, events)
               if e not in ("queued", "finished", "retrying")):
            return False
    return columns_fit(queued, QUEUED_COLUMNS) and columns_fit(ends, END_COLUMNS)


def _parsed(lines: list[Any]) -> list[Any] | None:
    """The lines' records, parsed in one go (None: one of them is no JSON that orjson takes)."""
    if jsonl.orjson is None:
        return None
    try:
        return list(map(jsonl.orjson.loads, lines))
    except jsonl.orjson.JSONDecodeError:
        return None


def scan(path: str) -> Scan:
    return Scan(path).read()
