"""``parallux show``: one run's summary, and a row per command (a table, CSV/TSV or JSON; ``export --csv``)."""

from __future__ import annotations

from typing import IO, Any, Iterable

from .._printable import printable
from .benchmarks import Benchmark
from .benchrows import order_text
from .output import cell, clock_text, compress_cores, counts_text, kib_text, rounded, seconds_text, write_delimited
from .records import CommandRecord, Run

# The fields of a command row, in order (show's csv/tsv/json, export --csv).
COMMAND_FIELDS = ("seq", "name", "runner", "host", "cores", "numa_node", "gpus", "status", "returncode", "signal",
                  "start", "end", "duration", "user_seconds", "system_seconds", "cpu_seconds", "max_rss_kb",
                  "memory_limit", "attempts", "resumed", "work_relpath", "work_dir", "command", "error", "bench",
                  "repetition", "metrics", "after")
TABLE_HEADERS = ("NAME", "RUNNER", "HOST", "CORES", "STATUS", "EXIT", "START", "DURATION", "CPU", "PEAK RSS",
                 "ATTEMPTS", "WORK DIR")


def select(commands: list[CommandRecord], failed: bool = False, slowest: int | None = None) -> list[CommandRecord]:
    if failed:
        commands = [c for c in commands if c.failed]
    if slowest is not None:
        commands = sorted((c for c in commands if c.duration is not None), key=lambda c: -(c.duration or 0.0))
        commands = commands[:slowest]
    return list(commands)


def select_benchmarks(benchmarks: list[Benchmark], failed: bool = False,
                      slowest: int | None = None) -> list[Benchmark]:
    """--failed: those with an execution that did not end ok; --slowest N: the N of longest median wall time."""
    if failed:
        benchmarks = [b for b in benchmarks if b.status not in ("ok", "running", "queued")]
    if slowest is not None:
        medians = {id(b): stats.median for b in benchmarks for stats in [b.summary("wall")[2]] if stats}
        benchmarks = sorted((b for b in benchmarks if id(b) in medians), key=lambda b: -medians[id(b)])[:slowest]
    return benchmarks


def command_row(run: Run, command: CommandRecord) -> dict[str, Any]:
    """One command as a flat mapping of COMMAND_FIELDS (JSON-able)."""
    last = command.last
    if last is None:  # queued, never started
        return {**dict.fromkeys(COMMAND_FIELDS), "seq": command.seq, "name": command.name, "cores": [], "gpus": [],
                "status": command.status, "attempts": 0, "resumed": False, "work_relpath": command.work_relpath,
                "command": command.command, "bench": command.bench, "repetition": command.repetition,
                "metrics": {}, "after": command.after or []}
    return {"seq": command.seq, "name": command.name, "runner": last.runner,
            "host": last.host or (run.runners.get(last.runner or "") or {}).get("host"), "cores": last.cores,
            "numa_node": last.numa_node, "gpus": last.gpus, "status": command.status, "returncode": last.returncode,
            "signal": last.signal, "start": last.start, "end": last.end, "duration": rounded(last.duration),
            "user_seconds": last.user_seconds, "system_seconds": last.system_seconds,
            "cpu_seconds": rounded(command.cpu_seconds), "max_rss_kb": last.max_rss_kb,
            "memory_limit": last.memory_limit, "attempts": len(command.attempts), "resumed": command.resumed,
            "work_relpath": command.work_relpath, "work_dir": last.work_dir, "command": command.command,
            "error": last.error, "bench": command.bench, "repetition": command.repetition,
            "metrics": last.metrics or {}, "after": command.after or []}


def write_rows(stream: IO[str], run: Run, commands: Iterable[CommandRecord], fmt: str = "csv") -> None:
    rows = (command_row(run, c) for c in commands)
    write_delimited(stream, list(COMMAND_FIELDS), ([cell(row[k], k) for k in COMMAND_FIELDS] for row in rows), fmt)


def table_row(command: CommandRecord, now: float) -> list[str]:
    """The table's cells (100,000 rows: attributes are read once each, no property twice)."""
    last = command.last
    status = command.status_text
    if command.resumed:
        status = "ok (resumed)"
    if last is None:
        return [command.name, "-", "-", "-", status, "-", "-", "-", "-", "-", "0", "-"]
    returncode = last.returncode
    start, end = last.start, last.end
    if command.status == "running" and start is not None:
        end = now
    user, system = last.user_seconds, last.system_seconds
    return [command.name, last.runner or "-", last.host or "-", _placement(last.cores, last.gpus), status,
            str(returncode) if returncode is not None else (f"sig{last.signal}" if last.signal else "-"),
            clock_text(start), seconds_text(end - start if start is not None and end is not None else None),
            seconds_text(None if user is None and system is None else (user or 0.0) + (system or 0.0)),
            kib_text(last.max_rss_kb), str(len(command.attempts)), last.work_dir or "-"]


def _placement(cores: list[int], gpus: list[int]) -> str:
    """The CORES cell: its cores, and its GPUs after them (``0-3 gpu 1``)."""
    text = compress_cores(cores)
    if gpus:
        text = f"{text} gpu {compress_cores(gpus)}".lstrip()
    return text or "-"


def summary_text(run: Run) -> str:
    summary = run.summary()
    state = summary["state"] + (f", exit status {summary['exit_status']}" if summary["exit_status"] is not None
                                else "")
    argv = summary["argv"]
    lines = [f"run      {run.run_id} ({state})",
             f"config   {summary['config']}" + (" -- " + " ".join(argv) if argv else ""),
             f"started  {clock_text(run.start, date=True)}, elapsed {seconds_text(run.elapsed)}",
             f"commands {summary['commands']}: {counts_text(summary['counts']) or 'none'}"
             + (f"; {summary['retries']} retries" if summary["retries"] else "")
             + (f"; {summary['resumed']} resumed" if summary["resumed"] else "")]
    if run.runners:
        lines.append("runners  " + ", ".join(_runner_text(r) for r in run.runners.values()))
    order = order_text(run)
    if order:
        lines.append(f"order    {order}")
    if summary["halted"]:
        lines.append(f"halted   {summary['halted']}")
    lines.append(f"log      {run.path}" + (f" ({run.skipped_lines} unreadable lines skipped)"
                                           if run.skipped_lines else ""))
    return "\n".join(map(printable, lines))  # a config's path, its arguments, a halt reason: any text


def _runner_text(runner: dict[str, Any]) -> str:
    where = runner.get("host") or "?"
    pool = runner.get("core_pool")
    slots = f"{runner.get('max_jobs')} slots" + (f", cores {compress_cores(pool)}" if pool else "")
    return f"{runner.get('name')} ({where}, {slots})"
