"""``--resume``: recognise commands an earlier run already completed, from the records in their work dirs.

A command is skipped when the work dir it would use holds a ``result.json`` saying it exited 0 and ran the
same command text with the same ``inputs=`` fingerprints (see ``_inputs``). Only commands with an explicit
``work_relpath`` can match: generated work paths are new in every run by design. The records are read by
the runners' launchers, in batches (``Seat.records``).
"""

from __future__ import annotations

from typing import Any, Callable

from ._handles import Command, Result
from ._status import Status

ReadRecords = Callable[[Any, list[str]], "list[dict[str, Any] | None]"]  # (seat, work dirs) -> records


def find_completed(handles: list[Command], read_records: ReadRecords) -> None:
    """Set ``resumed_result`` on each command an earlier run completed, from the records in its work dir on
    its runners (the first of its candidates that has one wins). Records are read in one batch per runner
    and candidate rank -- for an SSH runner, a few requests to its launcher instead of a read per command."""
    pending = list(handles)
    rank = 0
    while pending:
        by_runner: dict[Any, list[Command]] = {}  # seat -> the commands whose records to ask it for
        for handle in pending:
            if rank < len(handle.candidates):
                by_runner.setdefault(handle.candidates[rank], []).append(handle)
        if not by_runner:
            return
        for runner, asking in by_runner.items():
            for handle, record in zip(asking, records_of(runner, asking, read_records)):
                if record is None or not succeeded_same(record, handle):
                    continue
                if record.get("inputs") != handle.inputs:
                    handle.inputs_changed = True  # done before, but with other inputs: it runs again
                    continue
                handle.resumed_result = recorded_result(handle, runner, record)
        pending = [handle for handle in pending if handle.resumed_result is None]
        rank += 1


def records_of(seat: Any, handles: list[Command], read_records: ReadRecords) -> list[dict[str, Any] | None]:
    try:
        return read_records(seat, [seat.work_dir_of(handle.work_relpath) for handle in handles])
    except Exception:  # the runner cannot answer (a dropped connection): no proof of completion
        return [None] * len(handles)


def succeeded_same(record: dict[str, Any], handle: Command) -> bool:
    return (record.get("returncode") == 0 and not record.get("killed")
            and record.get("command") == handle.command_text)


def recorded_result(handle: Command, seat: Any, record: dict[str, Any]) -> Result:
    handle.runner = seat.handle
    handle.work_dir = seat.work_dir_of(handle.work_relpath)
    handle.cores = tuple(record.get("cores") or ())
    handle.numa_node = record.get("numa_node")
    handle.attempt = int(record.get("attempt") or 0)
    this_attempt = {"runner": record.get("runner"), "status": Status.OK, "returncode": 0,
                    "start": record.get("start"), "end": record.get("end")}
    earlier = record.get("attempts_before")
    return Result(handle, Status.OK, returncode=0, start_time=record.get("start"), end_time=record.get("end"),
                  user_seconds=record.get("user_seconds"), system_seconds=record.get("system_seconds"),
                  max_rss_kb=record.get("max_rss_kb"), resumed=True, run_id=record.get("run_id"),
                  attempts=(earlier if isinstance(earlier, list) else []) + [this_attempt])
