"""``parallux report``: one self-contained HTML file for a run, that opens from disk and needs no network.

The page is ``template.html`` with its script, its style and the vendored uPlot (MIT, see LICENSE-uPlot)
inlined, and the run's records embedded as JSON in ``<script type="application/json"
id="parallux-data">`` (columnar, documented in docs/reference.md, "The report's data"), so that other tools
can read them back. The timeline is drawn by hand on a canvas (``report.js``): one bar per attempt, lanes per
runner slot or core, 100,000 bars a frame; uPlot draws the charts over time and the histogram. A run with
benchmarks gets a section of its own (``bench_data``, ``benchmarks.js``): points over a box, a page at a time.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Any

import numpy as np

from .. import jsonl
from ..benchrows import order_text
from ..lanes import assign_slots, gpu_lanes
from ..machines import config_of, facts_table, machines_of
from ..reader import stderr_tail
from ..records import Attempt, CommandRecord, Run
from ..target import write_target
from ..scan import Scan
from .aggregate import aggregates, lanes_of, sampled_seqs
from .bench_data import benchmarks_data

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_FORMAT = 1
SHOWN_FAILURES = 200
FAILURE_TAIL_BYTES = 2048

# Times and durations (``*_us``) are integer microseconds (times: since ``origin``, in epoch seconds): exact
# enough, and three times cheaper to write than floats, for 100,000 commands.
COMMAND_FIELDS = ("seq", "name", "status", "returncode", "runner", "host", "cores", "duration_us", "cpu_us",
                  "max_rss_kb", "memory_limit", "attempts", "queued_us", "finished_us", "resumed", "work_relpath",
                  "work_dir", "command", "error")
ATTEMPT_FIELDS = ("seq", "attempt", "runner", "lane", "start_us", "end_us", "status", "returncode", "cores",
                  "user_us", "system_us", "max_rss_kb", "signal", "error", "gpus")


def write_report(run: Run, path: str, data: dict[str, Any] | None = None) -> None:
    html = render(run, data)
    write_target(path, lambda stream: stream.write(html))


def render(run: Run, data: dict[str, Any] | None = None) -> str:
    """The page of ``run``, with its data (``report_data(run)``, or the aggregated ``big_report_data``)."""
    title = f"parallux report: {os.path.basename(str(run.info.get('config') or run.path))} {run.run_id}"
    parts = {"/*STYLE*/": _asset("report.css"), "/*UPLOT_CSS*/": _asset("uPlot.min.css"),
             "/*UPLOT_JS*/": _script_code(_asset("uPlot.iife.min.js")),
             "/*REPORT_JS*/": _script_code(_asset("report.js")),
             "/*BENCH_JS*/": _script_code(_asset("benchmarks.js")),
             "/*MACHINES_JS*/": _script_code(_asset("machines.js")),
             "/*DATA*/": script_json(data if data is not None else report_data(run)), "<!--TITLE-->": _escape(title)}
    # One pass over the template: what is put in is never searched for markers itself.
    return _MARKERS.sub(lambda match: parts[match.group()], _asset("template.html"))


_MARKERS = re.compile(r"/\*(?:STYLE|UPLOT_CSS|UPLOT_JS|REPORT_JS|BENCH_JS|MACHINES_JS|DATA)\*/|<!--TITLE-->")
# Inside <script>, "</script" ends the block, "<!--" followed by "<script" makes the parser swallow the rest of
# the page, and U+2028/2029 end a line in JavaScript. In JSON these characters occur only inside strings, where
# their \u escapes mean the same: a reader's json.loads or JSON.parse gets the text back unchanged.
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(value: Any) -> str:
    """``value`` as JSON that can stand inside a <script> element whatever its strings hold."""
    text = jsonl.dumps(value)
    for char, escaped in _SCRIPT_UNSAFE.items():  # str.replace: a few ms for the 30 MB of 100,000 commands
        if char in text:
            text = text.replace(char, escaped)
    return text


def _script_code(code: str) -> str:
    """Code inlined in <script>: "</" written "<\\/", which its strings, comments and regular expressions allow."""
    return code.replace("</", "<\\/")


def report_data(run: Run) -> dict[str, Any]:
    """The run, columnar (a list of rows and the names of their fields), about 300 bytes per command."""
    now = run.end or run.last_time or run.start or 0.0
    lanes = assign_slots(run, now)
    origin = run.start if run.start is not None else min(
        (a.start for a in run.attempts() if a.start is not None), default=0.0)
    runners = _runners(run, {name: (each.kind, each.values) for name, each in lanes.items()})
    return {"format": "parallux-report", "version": DATA_FORMAT, "run": run.summary(), "origin": origin,
            "now_us": _us(now, origin), "generated_on": socket.gethostname(), "runners": runners,
            "commands": {"fields": list(COMMAND_FIELDS), "rows": [_command_row(c, origin) for c in run.commands]},
            "attempts": {"fields": list(ATTEMPT_FIELDS),
                         "rows": [_attempt_row(a, origin) for a in run.attempts()]},
            "failures": _failures(run), "benchmarks": benchmarks_data(run), "order_text": order_text(run),
            **_machines(run)}


def _machines(run: Run) -> dict[str, Any]:
    """What the run recorded of its machines and config (as ``show --format json``), and the facts as the
    Machines section's table shows them (``machines.facts_table``)."""
    machines = machines_of(run)
    return {"machines": machines, "config": config_of(run), "machine_facts": facts_table(machines)}


def big_report_data(scanned: Scan, detail: int) -> tuple[Run, dict[str, Any]]:
    """A run of more than ``detail`` attempts (``aggregate``): a sample of its commands in full, the rest
    aggregated; the counts are of every command."""
    run = scanned.load(sampled_seqs(scanned, detail))
    now = run.end or run.last_time or run.start or 0.0
    lanes, lane = lanes_of(scanned, now)
    listed = np.flatnonzero(scanned.listed)
    by_seq = listed[np.argsort(scanned.attempt_seq[listed], kind="stable")]
    seqs = scanned.attempt_seq[by_seq]
    for command in run.commands:  # (its attempts, in order, are its listed ones of the columns)
        first = int(np.searchsorted(seqs, command.seq))
        for offset, attempt in enumerate(command.attempts):
            if first + offset < len(seqs) and seqs[first + offset] == command.seq:
                attempt.slot = int(lane[by_seq[first + offset]])
    starts = scanned.start[listed]
    origin = run.start if run.start is not None else (float(np.nanmin(starts)) if np.isfinite(starts).any() else 0.0)
    runners = _runners(run, lanes)
    data = {"format": "parallux-report", "version": DATA_FORMAT, "run": run.summary(), "origin": origin,
            "now_us": _us(now, origin), "generated_on": socket.gethostname(), "runners": runners,
            "commands": {"fields": list(COMMAND_FIELDS), "rows": [_command_row(c, origin) for c in run.commands]},
            "attempts": {"fields": list(ATTEMPT_FIELDS), "rows": [_attempt_row(a, origin) for a in run.attempts()]},
            "failures": _failures(run), "benchmarks": benchmarks_data(run), "order_text": order_text(run),
            "aggregate": {**aggregates(scanned, lanes, lane, origin, now), "detail": detail}, **_machines(run)}
    return run, data


def _runners(run: Run, lanes: dict[str, tuple[str, list[int]]]) -> list[dict[str, Any]]:
    """Each runner's block of lanes (slots or cores), followed by one of its GPUs where its commands leased
    some (``lane_kind`` "gpu", ``runner`` naming whose)."""
    gpus = gpu_lanes(run)
    runners = []
    for name, (kind, values) in lanes.items():
        info = {k: v for k, v in (run.runners.get(name) or {}).items() if k not in ("event", "time")}
        runners.append({**info, "name": name, "lanes": values, "lane_kind": kind})
        if name in gpus:
            runners.append({"name": f"{name} GPUs", "runner": name, "lanes": gpus[name], "lane_kind": "gpu"})
    return runners


def _us(value: float | None, origin: float) -> int | None:
    return None if value is None else int((value - origin) * 1e6)


def _command_row(command: CommandRecord, origin: float) -> list[Any]:
    last = command.last
    if last is None:
        return [command.seq, command.name, command.status, None, None, None, [], None, None, None, None, 0,
                _us(command.queued, origin), None, False, command.work_relpath, None, command.command, None]
    return [command.seq, command.name, command.status, last.returncode, last.runner, last.host, last.cores,
            _us(last.duration, 0.0), _us(command.cpu_seconds, 0.0), last.max_rss_kb, last.memory_limit,
            len(command.attempts),
            _us(command.queued, origin), _us(command.finished_at, origin), command.resumed, command.work_relpath,
            last.work_dir, command.command, last.error]


def _attempt_row(attempt: Attempt, origin: float) -> list[Any]:
    return [attempt.seq, attempt.attempt, attempt.runner, attempt.slot, _us(attempt.start, origin),
            _us(attempt.end, origin), attempt.status, attempt.returncode, attempt.cores,
            _us(attempt.user_seconds, 0.0), _us(attempt.system_seconds, 0.0), attempt.max_rss_kb, attempt.signal,
            attempt.error, attempt.gpus]


def _failures(run: Run) -> list[dict[str, Any]]:
    """The first failed commands, each with the end of its stderr (read now, from the log or the work dir)."""
    shown = []
    for command in run.commands:
        if not command.failed:
            continue
        last = command.last
        tail = stderr_tail(last, run.runners.get(last.runner or ""), FAILURE_TAIL_BYTES) if last else None
        shown.append({"seq": command.seq, "stderr_tail": tail})
        if len(shown) == SHOWN_FAILURES:
            break
    return shown


def _asset(name: str) -> str:
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return f.read()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
