"""Benchmarks (SPEC 16): a command registered with ``repeat=N`` or ``warmup=K`` runs K + N times.

Each execution is a command of its own for the engine -- its own work dir ``<key>/w1..wK``, ``<key>/r1..rN``
(the key: the benchmark's work_relpath), its own run-log records, retries, timeout and ``--resume`` -- so
nothing below the registration knows about benchmarks but the run log's fields and ``PARALLUX_REPETITION``.
The config keeps one handle per registered command, a :class:`Benchmark`, whose result gathers its
executions' results and the statistics of each measure over the repetitions that ended ok (``_stats``).
"""

from __future__ import annotations

import posixpath
import time
from typing import Any, Sequence

from ._errors import ConfigError
from ._failures import command_error
from ._handles import Command, Completion, Result, failures_of
from ._spec import spec_fields
from ._stats import Stats, summarize
from ._status import Status

MEASURES = ("wall", "cpu", "memory")  # what parallux measures itself; the executions' metrics come after
WIDE_CI = 0.05        # a 95% CI of the median wider than +-5% of it is worth a look (as are outliers)
SHOWN_NOISY = 10      # benchmarks named in the summary; the rest are counted


class Benchmark:
    """The handle of a benchmark: the command handle's fields, its ``executions`` (command handles, the
    warm-ups first), and one :class:`Result` once they all ended. ``runner``, ``cores`` and the like are
    its first placed execution's; ``work_dir`` is the directory holding the executions' work dirs."""

    repetition = None  # (a Result made from this handle is the benchmark's, no execution's)
    attempt = 0
    command_path = stdout_path = stderr_path = record_path = None  # each execution has its own

    def __init__(self, template: Command, warmup: int, repeat: int, completion: Completion) -> None:
        self.warmup = warmup
        self.repeat = repeat
        self.command, self.command_text, self.name = template.command, template.command_text, template.name
        self.work_relpath = template.work_relpath
        self._spec = template._spec  # its options, each execution's: ``spec_fields`` reads them from here
        self.after = template.after  # its after= (each execution waits for all of it)
        labels = [f"w{i}" for i in range(1, warmup + 1)] + [f"r{i}" for i in range(1, repeat + 1)]
        self.executions = [self._execution(template, label, completion) for label in labels]
        self._result: Result | None = None
        self._planned = 0

    def _execution(self, template: Command, label: str, completion: Completion) -> Command:
        """One execution: the template's options (its spec) and rare fields (its request's NUMA node, inputs,
        after=), a work dir of its own, and its sequence number when it is issued."""
        execution = Command(completion, spec=self._spec, command=self.command, command_text=self.command_text,
                            seq=0, name=self.name, bench=self, repetition=label,
                            work_relpath=f"{self.work_relpath}/{label}")
        execution._rare = dict(template._rare) if template._rare is not None else None
        return execution

    # -- placement: its first placed execution's ---------------------------------------------------------

    @property
    def _placed(self) -> Command | None:
        return next((e for e in self.executions if e.runner is not None), None)

    @property
    def runner(self) -> Any:
        return self._placed.runner if self._placed is not None else None

    @property
    def runner_name(self) -> str | None:
        return self._placed.runner_name if self._placed is not None else None

    @property
    def host(self) -> str | None:
        return self._placed.host if self._placed is not None else None

    @property
    def cores(self) -> tuple[int, ...]:
        return self._placed.cores if self._placed is not None else ()

    @property
    def numa_node(self) -> int | None:
        return self._placed.numa_node if self._placed is not None else None

    @property
    def gpus(self) -> tuple[int, ...]:
        return self._placed.gpus if self._placed is not None else ()

    @property
    def work_dir(self) -> str | None:
        placed = self._placed
        return posixpath.dirname(placed.work_dir) if placed is not None and placed.work_dir else None

    @property
    def group(self) -> Any:
        return self.executions[0].group

    # -- waiting ------------------------------------------------------------------------------------------

    def assigned(self) -> bool:
        """True once one of its executions was placed on a runner."""
        return self._placed is not None

    def done(self) -> bool:
        return all(e.result is not None for e in self.executions)

    @property
    def result(self) -> Result | None:
        """Its result, once every execution ended (made once, in the thread that asks)."""
        if self._result is None and self.done():
            self._result = benchmark_result(self)
        return self._result

    def sync(self, timeout: float | None = None) -> Result:
        """Wait for every execution; raise, naming the executions that failed, under ``check=True``."""
        if self.group is None:
            raise ConfigError(f"command {self.name!r} was registered with schd() but never issued: call "
                              f"goal.issue() before waiting for it")
        if not self.executions[0]._spec.completion.wait_for(self.done, timeout, self):
            left = sum(e.result is None for e in self.executions)
            raise TimeoutError(f"benchmark {self.name!r}: {left} of {len(self.executions)} executions still "
                               f"running after {timeout} s")
        result = self.result
        assert result is not None
        if self.check and not result.succeeded and result.status != Status.PLANNED:
            raise command_error(failures_of(result))
        return result

    def plan_row(self) -> tuple[str, str, str, str] | None:
        """The dry run's plan line (name, runners, work dirs, cores) once its last execution is planned:
        one line per benchmark, so that 100 benchmarks x 10 stay readable. Called once per execution."""
        self._planned += 1
        if self._planned < len(self.executions):
            return None
        runners = sorted({e.runner_name or "?" for e in self.executions})
        cores = list(dict.fromkeys(",".join(map(str, e.cores)) or "-" for e in self.executions))
        spans = ([span("w", self.warmup)] if self.warmup else []) + [span("r", self.repeat)]
        dirs = spans[0] if len(spans) == 1 and self.repeat == 1 else "{" + ",".join(spans) + "}"
        return (f"{self.name} ({plural(self.repeat, 'repetition')}"
                + (f" + {plural(self.warmup, 'warm-up')})" if self.warmup else ")"),
                ",".join(runners), f"{self.work_dir}/{dirs}", "|".join(cores[:3]) + ("|..." if len(cores) > 3 else ""))

    def record(self) -> dict[str, Any]:
        """The run log's ``benchmark`` event, logged before its executions are queued."""
        return {"event": "benchmark", "time": time.time(), "key": self.work_relpath, "name": self.name,
                "command": self.command_text, "repeat": self.repeat, "warmup": self.warmup,
                "metrics": sorted(self.metrics or ())}

    def __repr__(self) -> str:
        left = sum(e.result is None for e in self.executions)
        return f"<Benchmark {self.name!r} {len(self.executions)} executions, {left} not finished>"


spec_fields(Benchmark)
Benchmark.work_generated = Command.work_generated  # type: ignore[attr-defined]


def benchmark_result(bench: Benchmark) -> Result:
    """One Result for the benchmark: ``ok`` when every execution was, else the first status that was not (with
    that execution's exit status and error); its span of time; its executions' results; its statistics."""
    results: list[Result] = [e.result for e in bench.executions]  # type: ignore[misc]
    bad = next((r for r in results if r.status != Status.OK), None)
    starts = [r.start_time for r in results if r.start_time is not None]
    ends = [r.end_time for r in results if r.end_time is not None]
    result = Result(bench, bad.status if bad is not None else Status.OK,
                    returncode=bad.returncode if bad is not None else 0, error=bad.error if bad is not None else None,
                    signal=bad.signal if bad is not None else None, start_time=min(starts, default=None),
                    end_time=max(ends, default=None), resumed=all(r.resumed for r in results),
                    run_id=next((r.run_id for r in results if not r.resumed), results[0].run_id), attempts=[])
    result.warmups, result.repetitions = results[:bench.warmup], results[bench.warmup:]
    result.stats = {measure: summarize([value for _, value in values])
                    for measure, values in measured(result.repetitions).items()}
    return result


def measured(repetitions: Sequence[Result]) -> dict[str, list[tuple[str, float]]]:
    """Measure -> (repetition, value) over the repetitions that ended ok: ``wall`` (the duration), ``cpu``
    (user + system), ``memory`` (peak RSS, kB), then every metric they reported."""
    values: dict[str, list[tuple[str, float]]] = {measure: [] for measure in MEASURES}
    for result in repetitions:
        if result.status != Status.OK:
            continue
        label = result.repetition or "?"
        if result.duration is not None:
            values["wall"].append((label, result.duration))
        if result.user_seconds is not None and result.system_seconds is not None:
            values["cpu"].append((label, result.user_seconds + result.system_seconds))
        if result.max_rss_kb is not None:
            values["memory"].append((label, float(result.max_rss_kb)))
        for name, value in result.metrics.items():
            values.setdefault(name, []).append((label, float(value)))
    return {measure: found for measure, found in values.items() if found}


# -- the end-of-run summary -------------------------------------------------------------------------------

def summary_lines(benchmarks: Sequence[Benchmark], order: str) -> list[str]:
    """The summary's lines about benchmarks: how many, the order (and a shuffle's seed), and those whose
    median is not known to +-5% or that have outliers, one line each."""
    if not benchmarks:
        return []
    executions = sum(len(b.executions) for b in benchmarks)
    lines = [f"  benchmarks: {len(benchmarks)} ({executions} executions), {order}"]
    noisy = [line for bench in benchmarks if (line := noise_line(bench)) is not None]
    if noisy:
        lines.append(f"  benchmarks with a 95% CI of the median wider than +-{WIDE_CI:.0%} or outliers: "
                     f"{len(noisy)} (parallux show --repetitions)")
        lines += [f"    {line}" for line in noisy[:SHOWN_NOISY]]
        if len(noisy) > SHOWN_NOISY:
            lines.append(f"    ... and {len(noisy) - SHOWN_NOISY} more")
    return lines


def noise_line(bench: Benchmark) -> str | None:
    """``mm/O2 wall: median 1.23 s, CI +-7.1%, outlier r4``: for the measures a benchmark is judged by (its
    metrics, or its wall time when it has none); None when they are all steady."""
    if not bench.done():
        return None
    made = bench._result  # (the statistics the config asked for; else only those judged here are computed)
    values = measured(made.repetitions if made is not None else
                      [e.result for e in bench.executions[bench.warmup:]])  # type: ignore[misc]
    judged = [m for m in values if m not in MEASURES] or ["wall"]
    problems = [problem for measure in judged if measure in values
                if (problem := measure_problem(measure, made.stats[measure] if made is not None else
                                               summarize([v for _, v in values[measure]]), values[measure]))
                is not None]
    return f"{bench.work_relpath} " + "; ".join(problems) if problems else None


def measure_problem(measure: str, stats: Stats, values: list[tuple[str, float]]) -> str | None:
    wide = stats.ci_half_width > WIDE_CI
    if not wide and not stats.outliers:
        return None
    unit = {"wall": " s", "cpu": " s", "memory": " kB"}.get(measure, "")
    half = stats.ci_half_width
    text = f"{measure}: median {stats.median:.4g}{unit}, CI +-{half:.1%}" if half < 1 else \
        f"{measure}: median {stats.median:.4g}{unit}, CI +-{half:.0%}"
    if stats.outliers:
        text += f", outlier{'s' if len(stats.outliers) > 1 else ''} " + ", ".join(values[i][0] for i in stats.outliers)
    return text


def span(prefix: str, count: int) -> str:
    return f"{prefix}1" if count == 1 else f"{prefix}1..{prefix}{count}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
