"""A run's benchmarks (SPEC 16), from its log: each benchmark's executions, and its values per measure.

Each execution of a benchmark is a command of the log whose ``queued`` record names the benchmark (``bench``,
its key) and the execution (``repetition``: ``w1`` a warm-up, ``r3`` a measured repetition). The measures of a
benchmark are ``wall`` (the duration), ``cpu`` (user + system), ``memory`` (peak RSS, KiB) and every metric; a
measure's values are those of its ``r*`` executions that ended ``ok``, in repetition order -- warm-ups and
failures never count. ``show``, ``compare`` and the report all read benchmarks through here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .._stats import Stats, summarize
from .output import kib_text, seconds_text
from .records import CommandRecord, Run

BUILT_IN = ("wall", "cpu", "memory")
# What each built-in measure is in: the views format their values by it (a metric's unit is its own).
UNITS = {"wall": "seconds", "cpu": "seconds", "memory": "KiB"}


@dataclass
class Benchmark:
    key: str                                   # its work_relpath, generated ones included
    name: str
    command: str | None = None
    declared: list[str] = field(default_factory=list)  # the metrics its metrics= named
    repeat: int | None = None
    warmup: int | None = None
    executions: list[CommandRecord] = field(default_factory=list)  # in submission order
    plain: bool = False  # a command that is no benchmark, seen as one: its one execution is its one value
    _ok: dict[bool, list[CommandRecord]] = field(default_factory=dict, repr=False)  # fresh -> ok ones, cached

    @property
    def measured(self) -> list[CommandRecord]:
        """Its measured repetitions (r1, r2, ...), in the order they were queued: repetition order."""
        if self.plain:
            return self.executions
        return [e for e in self.executions if e.repetition and e.repetition[0] == "r"]

    @property
    def status(self) -> str:
        """``ok`` when every execution ended ok, else the first status that was not ``ok``."""
        return next((e.status for e in self.executions if e.status != "ok"), "ok" if self.executions else "queued")

    @property
    def runners(self) -> list[str]:
        lasts = (e.ended or (e.attempts[-1] if e.attempts else None) for e in self.executions)
        return sorted({last.runner for last in lasts if last is not None and last.runner})

    def samples(self, measure: str, fresh: bool = False) -> tuple[list[float], list[CommandRecord]]:
        """The values of a measure, and the executions they come from (ok repetitions that have it; with
        ``fresh``, only those that ran in this run: a resumed one's figures are an earlier run's)."""
        sources = self._ok.get(fresh)
        if sources is None:
            sources = self._ok[fresh] = [e for e in self.measured if e.status == "ok" and not (fresh and e.resumed)]
        values = list(map(_ENDED_VALUES.get(measure) or value_getter(measure), sources))
        if None in values:  # (rare: an execution without it, such as a metric not every one reported)
            kept = [(value, source) for value, source in zip(values, sources) if value is not None]
            values, sources = [value for value, _ in kept], [source for _, source in kept]
        return list(map(float, values)), list(sources)

    def summary(self, measure: str, fresh: bool = False) -> tuple[list[float], list[CommandRecord], Stats | None]:
        """``samples`` and their statistics (None: no value)."""
        values, sources = self.samples(measure, fresh)
        return values, sources, summarize(values) if values else None


def value_getter(measure: str) -> Callable[[CommandRecord], float | None]:
    """A command's value of a measure (None: it has none)."""
    if measure == "wall":
        return lambda command: command.duration
    if measure == "cpu":
        return lambda command: command.cpu_seconds
    if measure == "memory":
        return lambda command: command.last.max_rss_kb if command.last is not None else None
    return lambda command: (command.last.metrics or {}).get(measure) if command.last is not None else None


def _wall(command: CommandRecord) -> float | None:
    ended = command.ended
    return ended.end - ended.start if ended.end is not None and ended.start is not None else None


def _cpu(command: CommandRecord) -> float | None:
    ended = command.ended
    if ended.user_seconds is None and ended.system_seconds is None:
        return None
    return (ended.user_seconds or 0.0) + (ended.system_seconds or 0.0)


# The built-in measures of a command that ended (``ended`` is set: an ok one), read straight from how it ended:
# samples() reads 300,000 values for 10,000 benchmarks, and each property it would go through costs.
_ENDED_VALUES: dict[str, Callable[[Any], float | None]] = {
    "wall": _wall, "cpu": _cpu, "memory": lambda command: command.ended.max_rss_kb}


def split(run: Run) -> tuple[list[Benchmark], list[CommandRecord]]:
    """The run's benchmarks (in the order they were submitted) and its plain commands."""
    benchmarks: dict[str, Benchmark] = {}
    for key, event in run.benchmarks.items():
        benchmarks[key] = Benchmark(key, event.get("name") or key, event.get("command"),
                                    list(event.get("metrics") or []), event.get("repeat"), event.get("warmup"))
    plain = []
    for command in run.commands:
        if command.bench is None:
            plain.append(command)
            continue
        benchmark = benchmarks.get(command.bench)
        if benchmark is None:  # its benchmark event is not in the log (torn, or a writer that did not log it)
            benchmark = benchmarks[command.bench] = Benchmark(command.bench, command.name, command.command)
        benchmark.executions.append(command)
    return list(benchmarks.values()), plain


def as_benchmark(command: CommandRecord) -> Benchmark:
    """A plain command seen as a benchmark of one execution (keyed by its work_relpath, else its name)."""
    return Benchmark(command.work_relpath or command.name, command.name, command.command,
                     executions=[command], plain=True)


def measures(run: Run) -> list[str]:
    """The measures the run has: the built-in ones, then every metric declared or reported, sorted."""
    names = {name for event in run.benchmarks.values() for name in event.get("metrics") or []}
    if run.totals is not None:  # (a run of which only some commands were read: every command's metrics)
        names.update(run.totals["metrics"])
    for command in run.commands:
        last = command.last
        if last is not None and last.metrics:
            names.update(last.metrics)
    return [*BUILT_IN, *sorted(names - set(BUILT_IN))]


class MeasureError(Exception):
    """``--metric NAME`` names no measure of the run(s) (the message lists those they have), or
    ``--higher-is-better`` is asked of a built-in measure: a usage error, exit 2."""


def check_measure(measure: str, runs: list[tuple[str, list[str]]]) -> None:
    """``measure`` one of those the runs have (given as run id, measures)."""
    known: list[str] = []
    for _, names in runs:
        known += [m for m in names if m not in known]
    if measure not in known:
        whose = "the runs have" if len(runs) > 1 else f"run {runs[0][0]} has"
        raise MeasureError(f"no measure {measure!r}: {whose} {', '.join(known)}")


def number_text(value: float | None, measure: str) -> str:
    """A value of a measure for a table: seconds, KiB, or a metric's number as it reads best."""
    if value is None:
        return "-"
    unit = UNITS.get(measure)
    if unit == "seconds":
        return seconds_text(value)
    if unit == "KiB":
        return kib_text(value)  # type: ignore[arg-type]
    return f"{value:.4g}"


def stats_dict(stats: Stats | None, values: list[float], sources: list[CommandRecord]) -> dict[str, Any] | None:
    """A measure's statistics as JSON: ``Stats``' fields, plus the values and the repetitions they are of
    (``outliers`` are positions in these lists)."""
    if stats is None:
        return None
    return {**stats.as_dict(), "values": values, "repetitions": [s.repetition for s in sources]}
