"""``--resume``: recognise commands an earlier run already completed, from the records in their work dirs.

A command is skipped when the work dir it would use holds a ``result.json`` saying it exited 0 and ran the
same command text. Only commands with an explicit ``work_relpath`` can match: generated work paths are new in
every run by design.
"""

from __future__ import annotations

import json
from typing import Any

from ._handles import Command, Result
from ._runner import Runner


def completed_result(handle: Command) -> Result | None:
    """The recorded result of this command from an earlier run on one of its runners, if it succeeded."""
    for runner in handle.candidates:
        record = read_record(runner, runner._work_dir_of(handle.work_relpath))
        if record is not None and succeeded_same(record, handle):
            return recorded_result(handle, runner, record)
    return None


def read_record(runner: Runner, work_dir: str) -> dict[str, Any] | None:
    try:
        return json.loads(runner.read_file(work_dir + "/result.json"))
    except Exception:  # missing, unreadable or half-written: not a proof of completion
        return None


def succeeded_same(record: dict[str, Any], handle: Command) -> bool:
    return (record.get("returncode") == 0 and not record.get("killed")
            and record.get("command") == handle.command_text)


def recorded_result(handle: Command, runner: Runner, record: dict[str, Any]) -> Result:
    handle.runner = runner
    handle.work_dir = runner._work_dir_of(handle.work_relpath)
    handle.cores = tuple(record.get("cores") or ())
    handle.numa_node = record.get("numa_node")
    handle.attempt = int(record.get("attempt") or 0)
    return Result(handle, "ok", returncode=0, start_time=record.get("start"), end_time=record.get("end"),
                  user_seconds=record.get("user_seconds"), system_seconds=record.get("system_seconds"),
                  max_rss_kb=record.get("max_rss_kb"), resumed=True)
