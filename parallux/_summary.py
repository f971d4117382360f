"""The summary a run ends with: counts by status, per runner, the failures by cause and the first in full,
where its log is and how to make its report (from :class:`~parallux._progress.Progress`'s counts)."""

from __future__ import annotations

from typing import Any

from ._durations import format_seconds
from ._failures import Cause, describe_cause, describe_failure, failure_cause
from ._handles import Result
from ._progress import Progress

SHOWN_CAUSES = 10
RUNNER_STATUS_ORDER = ("ok", "failed", "timeout", "oom", "error", "cancelled")


def summary_text(progress: Progress, log_path: str | None, run_id: str | None = None,
                 log_error: str | None = None, machines: list[str] | None = None,
                 extra: list[str] | None = None) -> str:
    """The end-of-run report: counts by status; per runner its counts, command time, quarantine and launcher
    restarts; the runners that share a machine (``machines``: its lines); the failures grouped by cause, then
    the first of them in full; ``extra`` lines (the benchmarks'); the run log, and how to make its report."""
    with progress.lock:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(progress.statuses.items()))
        noun = "command" if progress.finished == 1 else "commands"
        lines = [f"parallux: {progress.finished} {noun} ({counts or 'none'}) in {format_seconds(progress.elapsed)}"]
        if progress.resumed:
            where = ", ".join(f"{runner}: {n}" for runner, n in sorted(progress.resumed_per_runner.items()))
            lines.append(f"  resumed: {progress.resumed} commands skipped, already done in an earlier run ({where})")
        if progress.inputs_changed:
            lines.append(f"  rerun: {progress.inputs_changed} command{'s' if progress.inputs_changed > 1 else ''} "
                         "done in an earlier run whose inputs changed since")
        if progress.retries:
            lines.append(f"  retries: {progress.retries}")
        lines += runner_lines(progress)
        lines += machines or []
        lines += cause_lines(progress.all_failures)
        if progress.failures:
            lines.append("  first failures:" if len(progress.all_failures) > 1 else "  failure:")
        for result in progress.failures:
            lines.append("    " + describe_failure(result, tail_lines=3).replace("\n", "\n    "))
        hidden = progress.failure_count - len(progress.failures)
        if hidden > 0:
            lines.append(f"  ... and {hidden} more failures (see the run log)")
    lines += extra or []
    if log_path:
        lines.append(f"  run log: {log_path}" + (f" (incomplete: {log_error})" if log_error else ""))
    if run_id and log_path and not log_error and progress.finished:
        lines.append(f"  report: parallux report {run_id} -o report.html")
    return "\n".join(lines)


def runner_lines(progress: Progress) -> list[str]:
    lines = []
    runners = set(progress.statuses_per_runner) | set(progress.quarantined) | set(progress.restarts)
    for runner in sorted(runners):
        counts = progress.statuses_per_runner[runner]
        total = sum(counts.values())
        parts = ", ".join(f"{counts[s]} {s}" for s in RUNNER_STATUS_ORDER if counts[s])
        line = (f"  runner {runner}: {total} run{'' if total == 1 else 's'}"
                + (f" ({parts})" if parts else "") + f", {format_seconds(progress.busy_seconds[runner])} of command time")
        if runner in progress.quarantined:
            line += f"; {progress.quarantined[runner]}"
        lines.append(line)
        if progress.restarts[runner]:  # how its launchers died, each cause once
            count, causes = len(progress.restarts[runner]), "; ".join(dict.fromkeys(progress.restarts[runner]))
            lines.append(f"  runner {runner}: launcher restarted {count} time{'' if count == 1 else 's'} ({causes})")
    return lines


def cause_lines(failures: list[Result]) -> list[str]:
    """One line per cause (status, exit status, last stderr line) with its count and runners."""
    if len(failures) < 2:
        return []
    groups: dict[Cause, list[Any]] = {}
    for result in failures:
        group = groups.setdefault(failure_cause(result), [0, set()])
        group[0] += 1
        group[1].add(result.runner_name or "?")
    lines = ["  failures by cause:"]
    for cause, (count, runners) in sorted(groups.items(), key=lambda item: -item[1][0])[:SHOWN_CAUSES]:
        lines.append(f"    {count:>6} x {describe_cause(cause, runners)}")
    if len(groups) > SHOWN_CAUSES:
        lines.append(f"    ... and {len(groups) - SHOWN_CAUSES} more causes")
    return lines
