"""A run in other tools' formats: the Chrome trace event format (Perfetto UI, chrome://tracing) and JUnit XML.

In the trace, each runner is a process (``pid``) and each of its slots -- or cores, with a core pool -- a
thread (``tid``), named by metadata (``M``) events; each attempt is one complete (``X``) event whose ``args``
hold the command's fields; counter (``C``) events give the commands running per runner and queued overall.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import IO, Any

from . import jsonl
from .lanes import Lanes, assign_slots
from .reader import stderr_tail
from .records import Attempt, CommandRecord, Run

QUEUE_PID = 1  # the "parallux" process holding the queued counter; runners are 2, 3, ...
US = 1_000_000


def occupancy(run: Run, now: float) -> tuple[dict[str, list[tuple[float, int]]], list[tuple[float, int]]]:
    """Commands running per runner, and queued, over time: step functions as (time, value) change points."""
    running: dict[str, list[tuple[float, int]]] = {}
    for attempt in run.attempts():
        if attempt.start is not None:
            changes = running.setdefault(attempt.runner or "?", [])
            changes.append((attempt.start, 1))
            changes.append((attempt.end if attempt.end is not None else now, -1))
    queued: list[tuple[float, int]] = []
    for command in run.commands:
        for start, end in waiting_intervals(command, now):
            queued.append((start, 1))
            queued.append((end, -1))
    return {name: _steps(changes) for name, changes in running.items()}, _steps(queued)


def waiting_intervals(command: CommandRecord, now: float) -> list[tuple[float, float]]:
    """When the command waited in the queue: from submission (or a failed attempt's end, for a retry) to
    the next start, or to its end when it never started (cancelled), or to now."""
    if command.queued is None:
        return []  # resumed: done at submission, never queued
    intervals = []
    since = command.queued
    for attempt in command.attempts:
        if attempt.start is not None:
            intervals.append((since, max(since, attempt.start)))
        since = attempt.end if attempt.end is not None else now
    if command.status == "queued":
        intervals.append((since, now))
    elif not command.attempts and command.finished_at is not None:
        intervals.append((since, max(since, command.finished_at)))
    return intervals


def _steps(changes: list[tuple[float, int]]) -> list[tuple[float, int]]:
    changes.sort()
    steps: list[tuple[float, int]] = []
    level = 0
    for when, delta in changes:
        level += delta
        if steps and steps[-1][0] == when:
            steps[-1] = (when, level)
        else:
            steps.append((when, level))
    return steps


# -- Chrome trace ------------------------------------------------------------------------------------------


def write_trace(run: Run, stream: IO[str]) -> None:
    now = run.end or run.last_time or 0.0
    lanes = assign_slots(run, now)
    origin = run.start or min((a.start for a in run.attempts() if a.start is not None), default=0.0)
    pids = {name: index + 2 for index, name in enumerate(lanes)}
    events = _lane_names(run, lanes, pids) + _attempt_events(run, lanes, pids, origin, now)
    running, queued = occupancy(run, now)
    for name, steps in running.items():
        events += [{"ph": "C", "name": "running", "pid": pids[name], "tid": 0, "ts": round((t - origin) * US, 1),
                    "args": {"running": n}} for t, n in steps]
    events += [{"ph": "C", "name": "queued", "pid": QUEUE_PID, "tid": 0, "ts": round((t - origin) * US, 1),
                "args": {"queued": n}} for t, n in queued]
    other = {"run_id": run.run_id, "config": run.info.get("config"), "argv": run.info.get("argv"),
             "start": run.start, "parallux": run.info.get("parallux")}
    stream.write('{"displayTimeUnit":"ms","otherData":' + json.dumps(other) + ',"traceEvents":[\n')
    stream.write(",\n".join(map(jsonl.dumps, events)))
    stream.write("\n]}\n")


def _lane_names(run: Run, lanes: dict[str, Lanes], pids: dict[str, int]) -> list[dict[str, Any]]:
    """The metadata events that name (and order) a process per runner and a thread per lane."""
    events = [_meta(QUEUE_PID, 0, "process_name", "parallux"),
              _meta(QUEUE_PID, 0, "process_sort_index", 0, key="sort_index")]
    for name, runner_lanes in lanes.items():
        pid = pids[name]
        info = run.runners.get(name) or {}
        label = f"runner {name}" + (f" ({info['host']})" if info.get("host") else "")
        events += [_meta(pid, 0, "process_name", label), _meta(pid, 0, "process_sort_index", pid, key="sort_index")]
        for index, lane in enumerate(runner_lanes.values):
            events.append(_meta(pid, index + 1, "thread_name", f"{runner_lanes.kind} {lane}"))
            events.append(_meta(pid, index + 1, "thread_sort_index", index, key="sort_index"))
    return events


def _attempt_events(run: Run, lanes: dict[str, Lanes], pids: dict[str, int], origin: float,
                    now: float) -> list[dict[str, Any]]:
    """One complete event per attempt that started, on the thread of its lane."""
    tids = {name: {lane: i + 1 for i, lane in enumerate(runner_lanes.values)} for name, runner_lanes in lanes.items()}
    commands = {c.seq: c for c in run.commands}
    events = []
    for attempt in run.attempts():
        if attempt.start is None:
            continue
        name = attempt.runner or "?"
        end = attempt.end if attempt.end is not None else now
        events.append({"ph": "X", "name": commands[attempt.seq].name, "cat": attempt.status,
                       "pid": pids[name], "tid": tids[name].get(attempt.slot, 0),
                       "ts": round((attempt.start - origin) * US, 1), "dur": round(max(0.0, end - attempt.start) * US, 1),
                       "args": attempt_args(commands[attempt.seq], attempt)})
    return events


def _meta(pid: int, tid: int, name: str, value: Any, key: str = "name") -> dict[str, Any]:
    return {"ph": "M", "name": name, "pid": pid, "tid": tid, "args": {key: value}}


def attempt_args(command: CommandRecord, attempt: Attempt) -> dict[str, Any]:
    return {"seq": command.seq, "attempt": attempt.attempt, "status": attempt.status,
            "returncode": attempt.returncode, "signal": attempt.signal, "runner": attempt.runner,
            "host": attempt.host, "cores": attempt.cores, "numa_node": attempt.numa_node,
            "duration": attempt.duration, "user_seconds": attempt.user_seconds,
            "system_seconds": attempt.system_seconds, "max_rss_kb": attempt.max_rss_kb, "error": attempt.error,
            "work_relpath": command.work_relpath, "work_dir": attempt.work_dir, "command": command.command}


# -- JUnit XML -------------------------------------------------------------------------------------------

# Characters XML 1.0 cannot hold (a command's stderr may have any byte): replaced, or the file won't parse.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: Any) -> str:
    return _NOT_XML.sub("\ufffd", "" if text is None else str(text))


def write_junit(run: Run, stream: IO[str]) -> None:
    """One testsuite for the run, one testcase per command: failed/timeout are failures, error an error,
    cancelled (or not finished) skipped; each with its stderr tail."""
    config = run.info.get("config") or run.path
    counts = {"failures": 0, "errors": 0, "skipped": 0}
    cases = [_testcase(run, c, counts) for c in run.commands]
    elapsed = f"{run.elapsed or 0.0:.3f}"
    attributes = {"name": _xml(config), "tests": str(len(cases)), "failures": str(counts["failures"]),
                  "errors": str(counts["errors"]), "skipped": str(counts["skipped"]), "time": elapsed}
    root = ET.Element("testsuites", {"name": "parallux", **{k: v for k, v in attributes.items() if k != "name"}})
    suite = ET.SubElement(root, "testsuite", {**attributes, "id": run.run_id,
                                              "hostname": _xml(run.info.get("host") or ""),
                                              "timestamp": _iso(run.start)})
    properties = ET.SubElement(suite, "properties")
    for key in ("run_id", "config", "argv", "parallux", "log"):
        value = run.run_id if key == "run_id" else run.path if key == "log" else run.info.get(key)
        ET.SubElement(properties, "property", {"name": key, "value": _xml(value if not isinstance(value, list)
                                                                               else " ".join(value))})
    suite.extend(cases)
    ET.indent(root)
    stream.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    stream.write(ET.tostring(root, encoding="unicode"))
    stream.write("\n")


def _testcase(run: Run, command: CommandRecord, counts: dict[str, int]) -> ET.Element:
    case = ET.Element("testcase", {"name": _xml(command.name), "classname": _xml(command.runner or "parallux"),
                                   "time": f"{command.duration or 0.0:.3f}"})
    if command.work_relpath:
        case.set("file", _xml(command.work_relpath))
    status = command.status
    if status == "ok":
        return case
    last = command.last
    tail = stderr_tail(last, run.runners.get(last.runner or "")) if last is not None else None
    message = _message(command)
    if status in ("failed", "timeout", "oom"):
        counts["failures"] += 1
        element = ET.SubElement(case, "failure", {"message": _xml(message), "type": status})
    elif status == "error":
        counts["errors"] += 1
        element = ET.SubElement(case, "error", {"message": _xml(message), "type": status})
    else:
        counts["skipped"] += 1
        element = ET.SubElement(case, "skipped", {"message": _xml(message)})
    if tail:
        element.text = _xml(tail)
        ET.SubElement(case, "system-err").text = _xml(tail)
    return case


def _message(command: CommandRecord) -> str:
    last = command.last
    returncode, error, work_dir = (last.returncode, last.error, last.work_dir) if last else (None, None, None)
    if command.status == "failed":
        text = f"exited with status {returncode}"
    elif command.status == "timeout":
        text = "timed out"
    elif command.status == "oom":
        text = f"{command.status_text}: its process tree ran out of memory and was killed"
    elif command.status in ("queued", "running"):
        text = f"still {command.status} when the log was read"
    else:
        text = command.status
    return text + (f": {error}" if error else "") + (f" (work dir {work_dir})" if work_dir else "")


def _iso(epoch: float | None) -> str:
    import datetime
    if epoch is None:
        return ""
    return datetime.datetime.fromtimestamp(epoch).isoformat(timespec="seconds")
