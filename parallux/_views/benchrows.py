"""``parallux show`` for a run with benchmarks: a row per benchmark for one measure (a table), every measure
of every benchmark (JSON, CSV/TSV), and with ``--repetitions`` a row per execution."""

from __future__ import annotations

from typing import IO, Any, Iterable

from .benchmarks import Benchmark, as_benchmark, number_text, stats_dict, value_getter
from .output import cell, clock_text, write_delimited
from .records import CommandRecord, Run

TABLE_HEADERS = ("NAME", "RUNNERS", "STATUS", "N", "MEDIAN", "95% CI", "CV", "MIN", "MAX", "OUTLIERS")
# show --format csv/tsv of a run with benchmarks: a row per benchmark (or plain command) and measure
BENCH_FIELDS = ("key", "name", "kind", "runners", "status", "measure", "n", "median", "ci_low", "ci_high",
                "ci_level", "mean", "stdev", "cv", "mad", "min", "max", "outliers", "outlier_repetitions")


def table_row(benchmark: Benchmark, measure: str) -> list[str]:
    values, sources, stats = benchmark.summary(measure)
    head = [benchmark.name, ",".join(benchmark.runners) or "-", benchmark.status, str(len(values))]
    if stats is None:
        return head + ["-"] * 6
    text = lambda value: number_text(value, measure)  # noqa: E731
    outliers = [sources[i].repetition or "?" for i in stats.outliers]
    return head + [text(stats.median), f"{text(stats.ci_low)} .. {text(stats.ci_high)}",
                   "-" if stats.cv is None else f"{stats.cv * 100:.1f}%", text(stats.min), text(stats.max),
                   f"{len(outliers)} ({', '.join(outliers[:3])}{', ...' if len(outliers) > 3 else ''})"
                   if outliers else "0"]


def heading(benchmarks: list[Benchmark], measure: str) -> str:
    what = {"wall": "wall time", "cpu": "CPU time (user + system)", "memory": "peak RSS"}.get(measure,
                                                                                             f"metric {measure}")
    return (f"{len(benchmarks)} benchmark{'s' if len(benchmarks) != 1 else ''}, {what} of the repetitions that "
            f"ended ok (--metric NAME for another measure)")


EXECUTION_HEADERS = ("NAME", "REP", "RUNNER", "HOST", "STATUS", "START", "VALUE", "OUTLIER", "WORK DIR")


def execution_rows(benchmark: Benchmark, measure: str) -> list[list[str]]:
    """Every execution of a benchmark, warm-ups first, its value of the measure, and whether it is an outlier."""
    _, sources, stats = benchmark.summary(measure)
    flagged = {id(sources[i]) for i in stats.outliers} if stats is not None else set()
    value_of = value_getter(measure)  # (shown for warm-ups and failures too, which the statistics leave out)
    rows = []
    for execution in sorted(benchmark.executions, key=lambda e: (e.repetition or "")[:1] != "w"):
        last = execution.last
        rows.append([benchmark.name, execution.repetition or "-", execution.runner or "-",
                     (last.host if last else None) or "-", execution.status,
                     clock_text(last.start if last else None), number_text(value_of(execution), measure),
                     "outlier" if id(execution) in flagged else "", (last.work_dir if last else None) or "-"])
    return rows


def benchmark_json(benchmark: Benchmark, measures: list[str]) -> dict[str, Any]:
    """A benchmark, with the statistics of every measure (null for one it has no value of)."""
    stats = {}
    for measure in measures:
        values, sources, summary = benchmark.summary(measure)
        stats[measure] = stats_dict(summary, values, sources)
    return {"key": benchmark.key, "name": benchmark.name, "command": benchmark.command,
            "runners": benchmark.runners, "status": benchmark.status, "repeat": benchmark.repeat,
            "warmup": benchmark.warmup, "metrics": benchmark.declared, "executions": len(benchmark.executions),
            "stats": stats}


def write_stats_rows(stream: IO[str], benchmarks: list[Benchmark], plain: Iterable[CommandRecord],
                     measures: list[str], fmt: str) -> None:
    """CSV/TSV: a row per benchmark and measure, then per plain command and measure (a sample of one)."""
    items = [*benchmarks, *map(as_benchmark, plain)]
    write_delimited(stream, list(BENCH_FIELDS), (row for item in items for row in _stats_rows(item, measures)), fmt)


def _stats_rows(item: Benchmark, measures: list[str]) -> Iterable[list[Any]]:
    for measure in measures:
        values, sources, stats = item.summary(measure)
        if not values and measure not in ("wall", "cpu", "memory"):
            continue  # a metric this one never reported: no row rather than an empty one per metric
        fields = stats.as_dict() if stats is not None else {}
        row = {"key": item.key, "name": item.name, "kind": "command" if item.plain else "benchmark",
               "runners": ",".join(item.runners), "status": item.status, "measure": measure, "n": len(values),
               **{k: v for k, v in fields.items() if k != "outliers"},
               "outliers": len(stats.outliers) if stats is not None else None,
               "outlier_repetitions": ",".join(sources[i].repetition or "" for i in stats.outliers)
               if stats is not None else None}
        yield [cell(row.get(k), k) for k in BENCH_FIELDS]


def order_text(run: Run) -> str | None:
    """``shuffle (seed 42)``; several when setOrder changed it: ``interleave, then grouped``."""
    if not run.orders:
        return None
    return ", then ".join(f"{o.get('mode')}" + (f" (seed {o.get('seed')})" if o.get("seed") is not None else "")
                          for o in run.orders)
