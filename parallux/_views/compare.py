"""``parallux compare``: two runs benchmark by benchmark (and plain command by command), matched by key or by
name; for each, the ratio B/A of the medians of a measure, its 95% interval, a p-value and a verdict
(``significance``), then the geometric mean of the ratios with its interval; and, before the rows, what
differs between the runs' machines, probes and config (``differences``)."""

from __future__ import annotations

from typing import Any

from .._printable import printable
from .benchmarks import BUILT_IN, MeasureError, check_measure, number_text
from .differences import differences, differences_text
from .output import clock_text, counts_text, rounded, table_text
from .sides import Item, Side
from .significance import ALPHA, DEFAULT_THRESHOLD, Comparison, compare_many, geometric_mean_interval

COMPARE_FIELDS = ("key", "name", "kind", "status_a", "status_b", "n_a", "n_b", "median_a", "median_b", "ratio",
                  "ratio_low", "ratio_high", "p_value", "verdict", "runner_a", "runner_b")
VERDICTS = ("slower", "faster", "same", "too few")


def check_options(measure: str, higher_is_better: bool, sides: list[Side]) -> None:
    """A usage error (MeasureError) before anything is compared: a measure neither run has, or a direction
    asked of a built-in measure."""
    check_measure(measure, [(side.summary["run_id"], side.measures) for side in sides])
    if higher_is_better and measure in BUILT_IN:
        raise MeasureError(f"--higher-is-better is for a metric such as GFLOP/s: lower is better for {measure}")


def compare_sides(a: Side, b: Side, measure: str = "wall", threshold: float = DEFAULT_THRESHOLD,
                  higher_is_better: bool = False, match: str = "key") -> dict[str, Any]:
    check_options(measure, higher_is_better, [a, b])
    matched = [(key, item, b.items[key]) for key, item in a.items.items() if key in b.items]
    testable = [(x.values, y.values) for _, x, y in matched if x.values and y.values]
    comparisons = iter(compare_many(testable, threshold, higher_is_better))
    rows = [_row(key, x, y, next(comparisons) if x.values and y.values else None) for key, x, y in matched]
    better = -1 if higher_is_better else 1
    rank = {verdict: index for index, verdict in enumerate(VERDICTS)}
    rows.sort(key=lambda r: (rank[r["verdict"]], r["ratio"] is None, -better * (r["ratio"] or 0.0)))
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None and r["ratio"] > 0]
    center, low, high = geometric_mean_interval(ratios) if ratios else (None, None, None)
    only_a = sorted(k for k in a.items if k not in b.items)
    only_b = sorted(k for k in b.items if k not in a.items)
    return {"a": a.summary, "b": b.summary, "measure": measure, "match": match,
            "threshold": threshold, "higher_is_better": higher_is_better, "matched": len(rows),
            "only_a": only_a, "only_b": only_b, "repeated": sorted(set(a.repeated) | set(b.repeated)),
            "hint": unmatched_hint(only_a, only_b, match, a, b) if only_a and only_b else None,
            "status_changes": [r for r in rows if r["status_a"] != r["status_b"]],
            "verdicts": {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS},
            "compared": len(ratios), "geometric_mean": rounded(center, 4), "geometric_mean_low": rounded(low, 4),
            "geometric_mean_high": rounded(high, 4),
            "differences": differences(a.environment, b.environment), "commands": rows}


def _row(key: str, a: Item, b: Item, found: Comparison | None) -> dict[str, Any]:
    row = {"key": key, "name": b.name, "kind": "benchmark" if "benchmark" in (a.kind, b.kind) else "command",
           "status_a": a.status, "status_b": b.status, "n_a": len(a.values), "n_b": len(b.values),
           "median_a": _median(a.values), "median_b": _median(b.values), "ratio": None, "ratio_low": None,
           "ratio_high": None, "p_value": None, "verdict": "too few", "runner_a": a.runners, "runner_b": b.runners}
    if found is not None:
        row.update(median_a=rounded(found.median_a), median_b=rounded(found.median_b), ratio=rounded(found.ratio),
                   ratio_low=rounded(found.ratio_low), ratio_high=rounded(found.ratio_high),
                   p_value=rounded(found.p_value, 8), verdict=found.verdict)
    return row


def _median(values: list[float]) -> float | None:
    from statistics import median
    return rounded(median(values)) if values else None


def unmatched_hint(only_a: list[str], only_b: list[str], match: str, a: Side, b: Side) -> str:
    """What differs between the two runs' keys, and what to do about it."""
    if match == "name":
        return (f"the names differ: A has {only_a[0]!r}, B has {only_b[0]!r}"
                + (" (names repeated within a run match nothing)" if len(only_a) > 1 else ""))
    prefix_a, prefix_b = _common_prefix(only_a), _common_prefix(only_b)
    generated = [name for name, side in (("A", a), ("B", b)) if side.generated]
    if prefix_a != prefix_b:
        rest = {k[len(prefix_a):] for k in only_a} & {k[len(prefix_b):] for k in only_b}
        text = (f"the work paths differ by their prefix: A's are under {prefix_a or './'!r}, B's under "
                f"{prefix_b or './'!r}")
        if generated:
            text += f" ({' and '.join(generated)} generated by parallux, under their run id)"
        return text + (f"; {len(rest)} match without it: --match name matches by command name" if rest
                       else "; --match name matches by command name")
    return f"no work path in common (A has {only_a[0]!r}, B has {only_b[0]!r}); --match name matches by name"


def _common_prefix(keys: list[str]) -> str:
    """The leading directories every key shares: ``"campaign-a/"`` for ``campaign-a/mm/O2``, ``campaign-a/fft``."""
    parts = [key.split("/")[:-1] for key in keys]
    common = parts[0]
    for other in parts[1:]:
        while other[:len(common)] != common:
            common = common[:-1]
    return "".join(part + "/" for part in common)


def compare_text(result: dict[str, Any]) -> str:
    a, b, measure = result["a"], result["b"], result["measure"]
    by = "key (work_relpath)" if result["match"] == "key" else "name"
    lines = [f"A        {a['run_id']}  {clock_text(a['start'], date=True)}  {counts_text(a['counts'])}",
             f"B        {b['run_id']}  {clock_text(b['start'], date=True)}  {counts_text(b['counts'])}",
             f"matched  {result['matched']} by {by}; {len(result['only_a'])} only in A, "
             f"{len(result['only_b'])} only in B"]
    if result["hint"]:
        lines.append(printable(f"         ({result['hint']})"))
    if result["repeated"]:
        lines.append(printable(f"         ({len(result['repeated'])} used more than once in a run, not matched: "
                               + ", ".join(result["repeated"][:3]) + (", ..." if len(result["repeated"]) > 3 else "")
                               + ")"))
    better = "higher" if result["higher_is_better"] else "lower"
    lines.append(f"measure  {measure} ({better} is better); a verdict is slower or faster when p < {ALPHA} "
                 f"and B/A is beyond {result['threshold'] * 100:g}%")
    lines.append("verdicts " + (", ".join(f"{n} {v}" for v, n in result["verdicts"].items() if n) or "none"))
    mean = result["geometric_mean"]
    interval = (f" (95% CI {result['geometric_mean_low']:.3f} .. {result['geometric_mean_high']:.3f})"
                if result["geometric_mean_low"] is not None else "")
    lines.append(f"B/A      geometric mean {mean:.3f}{interval} over {result['compared']} compared"
                 if mean is not None else "B/A      nothing ended ok in both runs")
    lines += differences_text(result["differences"])
    changes = result["status_changes"]
    if changes:
        lines += ["", f"status changes ({len(changes)}):"]
        lines += [printable(f"  {r['key']}: {r['status_a']} -> {r['status_b']}") for r in changes]
    if result["commands"]:
        lines += ["", table_text(("KEY" if result["match"] == "key" else "NAME", "STATUS A", "STATUS B", "N A",
                                  "N B", "MEDIAN A", "MEDIAN B", "B/A", "95% CI", "P", "VERDICT"),
                                 [_table_row(r, measure) for r in result["commands"]])]
    return "\n".join(lines)


def _table_row(row: dict[str, Any], measure: str) -> list[str]:
    ratio, low, high = row["ratio"], row["ratio_low"], row["ratio_high"]
    return [row["key"], row["status_a"], row["status_b"], str(row["n_a"]), str(row["n_b"]),
            number_text(row["median_a"], measure), number_text(row["median_b"], measure),
            "-" if ratio is None else f"{ratio:.3f}", "-" if low is None else f"{low:.3f} .. {high:.3f}",
            "-" if row["p_value"] is None else f"{row['p_value']:.3g}", row["verdict"]]
