"""``--resume``: recognise commands an earlier run already completed, from the records in their work dirs.

A command is skipped when the work dir it would use holds a ``result.json`` saying it exited 0, ended ``ok``
(its metrics all there) and ran the same command text with the same ``inputs=`` fingerprints (see
``_inputs``), and gave every metric the command declares now. Only commands with an explicit
``work_relpath`` can match: generated work paths are new in every run by design. The records are read by
the runners' launchers, in batches (``Seat.records``).
"""

from __future__ import annotations

from typing import Any, Callable

from ._handles import Command, Result
from ._status import Status

ReadRecords = Callable[[Any, list[str]], "list[dict[str, Any] | None]"]  # (seat, work dirs) -> records

# What a resumed result takes from a completion record, and the types it must have there (else the record
# proves nothing: the command runs again). Numbers beyond these bounds are no time or size a run has.
_NUMBER, _MAYBE_NUMBER, _MAYBE_INT, _MAYBE_TEXT = (int, float), (int, float, type(None)), (int, type(None)), \
    (str, type(None))
_FIELDS = {"cores": (list, type(None)), "gpus": (list, type(None)), "numa_node": _MAYBE_INT, "attempt": _MAYBE_INT, "runner": _MAYBE_TEXT,
           "host": _MAYBE_TEXT,
           "start": _MAYBE_NUMBER, "end": _MAYBE_NUMBER, "user_seconds": _MAYBE_NUMBER,
           "system_seconds": _MAYBE_NUMBER, "max_rss_kb": _MAYBE_NUMBER, "run_id": _MAYBE_TEXT,
           "attempts_before": (list, type(None)), "metrics": (dict, type(None))}
_SCALARS = (str, int, float, bool, type(None))
LOWEST, HIGHEST = -1e10, 1e11


def find_completed(handles: list[Command], read_records: ReadRecords,
                   warn: Callable[[str], None] | None = None) -> None:
    """Set ``resumed_result`` on each command an earlier run completed, from the records in its work dir on
    its runners (the first of its candidates that has one wins). Records are read in one batch per runner
    and candidate rank -- for an SSH runner, a few requests to its launcher instead of a read per command.
    A record that does not fit is no proof: its command runs again, and ``warn`` hears of it once."""
    unfit: list[str] = []
    try:
        _find(handles, read_records, unfit)
    finally:
        if unfit and warn is not None:
            more = f" (and {len(unfit) - 1} more)" if len(unfit) > 1 else ""
            warn(f"--resume: {unfit[0]}{more}; the command{'s' if more else ''} run again")


def _find(handles: list[Command], read_records: ReadRecords, unfit: list[str]) -> None:
    pending = list(handles)
    rank = 0
    while pending:
        by_runner: dict[Any, list[Command]] = {}  # seat -> the commands whose records to ask it for
        for handle in pending:
            if rank < len(handle.candidates):
                by_runner.setdefault(handle.candidates[rank], []).append(handle)
        if not by_runner:
            return
        for seat, asking in by_runner.items():
            for handle, record in zip(asking, records_of(seat, asking, read_records)):
                if record is None or not succeeded_same(record, handle):
                    continue
                why = record_problem(record)
                if why is not None:
                    unfit.append(f"{seat.name}:{seat.view.work_dir_of(handle.work_relpath)}/result.json is no "
                                 f"completion record parallux wrote ({why})")
                    continue
                if record.get("inputs") != handle.inputs:
                    handle.inputs_changed = True  # done before, but with other inputs: it runs again
                    continue
                handle.resumed_result = recorded_result(handle, seat, record)
        pending = [handle for handle in pending if handle.resumed_result is None]
        rank += 1


def records_of(seat: Any, handles: list[Command], read_records: ReadRecords) -> list[dict[str, Any] | None]:
    try:
        return read_records(seat, [seat.view.work_dir_of(handle.work_relpath) for handle in handles])
    except Exception:  # the runner cannot answer (a dropped connection): no proof of completion
        return [None] * len(handles)


def record_problem(record: dict[str, Any]) -> str | None:
    """Why a completion record cannot give a resumed result (None: it can)."""
    for key, kinds in _FIELDS.items():
        value = record.get(key)
        if type(value) not in kinds:
            return f"{key} is {type(value).__name__}"
        if type(value) in _NUMBER and not LOWEST <= value <= HIGHEST:
            return f"{key} out of range"
    if any(type(core) is not int or not LOWEST <= core <= HIGHEST for core in record.get("cores") or ()):
        return "cores are not core numbers"
    if any(type(gpu) is not int or not 0 <= gpu <= HIGHEST for gpu in record.get("gpus") or ()):
        return "gpus are not GPU indices"
    if any(type(name) is not str or type(value) not in _NUMBER for name, value in (record.get("metrics") or {}).items()):
        return "metrics are not numbers"
    for attempt in record.get("attempts_before") or ():
        if type(attempt) is not dict or any(type(v) not in _SCALARS for v in attempt.values()):
            return "attempts_before are not attempts"
    return None


def succeeded_same(record: dict[str, Any], handle: Command) -> bool:
    """Whether the record says this command succeeded: exited 0, ``ok`` (a missing metric fails a command
    that exited 0), and gave every metric it declares now (one declared since runs it again)."""
    return (record.get("returncode") == 0 and not record.get("killed") and record.get("status", "ok") == "ok"
            and record.get("command") == handle.command_text
            and (not handle.metrics or isinstance(record.get("metrics"), dict)
                 and handle.metrics.keys() <= record["metrics"].keys()))


def recorded_result(handle: Command, seat: Any, record: dict[str, Any]) -> Result:
    handle.runner = seat.handle
    handle.work_dir = seat.view.work_dir_of(handle.work_relpath)
    handle._settle(seat.view.settled)
    handle.cores = tuple(record.get("cores") or ())
    handle.numa_node = record.get("numa_node")
    handle.gpus = tuple(record.get("gpus") or ())
    handle.host = record.get("host")  # where it ran (a node of an earlier allocation), not where it would now
    handle.attempt = int(record.get("attempt") or 0)
    this_attempt = {"runner": record.get("runner"), "status": Status.OK, "returncode": 0,
                    "start": record.get("start"), "end": record.get("end")}
    if handle.host is not None:
        this_attempt["host"] = handle.host
    earlier = record.get("attempts_before")
    return Result(handle, Status.OK, returncode=0, start_time=record.get("start"), end_time=record.get("end"),
                  user_seconds=record.get("user_seconds"), system_seconds=record.get("system_seconds"),
                  max_rss_kb=record.get("max_rss_kb"), metrics=record.get("metrics"), resumed=True,
                  run_id=record.get("run_id"),
                  attempts=(earlier if isinstance(earlier, list) else []) + [this_attempt])
