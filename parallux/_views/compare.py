"""``parallux compare``: two runs command by command, matched by work_relpath; the ratio of durations."""

from __future__ import annotations

import math
from typing import Any

from .._printable import printable
from .output import clock_text, counts_text, rounded, seconds_text, table_text
from .records import Run

COMPARE_FIELDS = ("work_relpath", "name", "status_a", "status_b", "duration_a", "duration_b", "ratio",
                  "runner_a", "runner_b")


def compare_runs(run_a: Run, run_b: Run) -> dict[str, Any]:
    """Commands matched by work_relpath: status changes, the ratio B/A of durations, their geometric mean."""
    by_path_a = {c.work_relpath: c for c in run_a.commands if c.work_relpath is not None}
    by_path_b = {c.work_relpath: c for c in run_b.commands if c.work_relpath is not None}
    rows = []
    for path, a in by_path_a.items():
        b = by_path_b.get(path)
        if b is None:
            continue
        ratio = (b.duration / a.duration if a.status == b.status == "ok" and a.duration and b.duration
                 and not a.resumed and not b.resumed else None)
        rows.append({"work_relpath": path, "name": b.name, "status_a": a.status, "status_b": b.status,
                     "duration_a": rounded(a.duration), "duration_b": rounded(b.duration), "ratio": rounded(ratio),
                     "runner_a": a.runner, "runner_b": b.runner})
    rows.sort(key=lambda r: (r["ratio"] is None, -(r["ratio"] or 0.0)))
    mean = geometric_mean([r["ratio"] for r in rows if r["ratio"] is not None])
    return {"a": run_a.summary(), "b": run_b.summary(), "matched": len(rows),
            "only_a": sorted(p for p in by_path_a if p not in by_path_b),
            "only_b": sorted(p for p in by_path_b if p not in by_path_a),
            "status_changes": [r for r in rows if r["status_a"] != r["status_b"]],
            "compared": sum(r["ratio"] is not None for r in rows),
            "geometric_mean": rounded(mean, 4), "commands": rows}


def compare_text(result: dict[str, Any]) -> str:
    a, b = result["a"], result["b"]
    lines = [f"A        {a['run_id']}  {clock_text(a['start'], date=True)}  {counts_text(a['counts'])}",
             f"B        {b['run_id']}  {clock_text(b['start'], date=True)}  {counts_text(b['counts'])}",
             f"matched  {result['matched']} commands by work_relpath; {len(result['only_a'])} only in A, "
             f"{len(result['only_b'])} only in B"]
    if result["matched"] == 0:
        lines.append("         (generated work paths differ in every run: give commands a work_relpath, "
                     "or use workloads(), to compare runs)")
    mean = result["geometric_mean"]
    lines.append(f"duration B/A: geometric mean {mean:.3f} over {result['compared']} commands ok in both"
                 if mean is not None else "duration B/A: no command ok in both runs")
    changes = result["status_changes"]
    if changes:
        lines += ["", f"status changes ({len(changes)}):"]
        lines += [printable(f"  {r['work_relpath']}: {r['status_a']} -> {r['status_b']}") for r in changes]
    if result["commands"]:
        lines.append("")
        headers = ("WORK_RELPATH", "STATUS A", "STATUS B", "DURATION A", "DURATION B", "B/A")
        rows = [[r["work_relpath"], r["status_a"], r["status_b"], seconds_text(r["duration_a"]),
                 seconds_text(r["duration_b"]), "-" if r["ratio"] is None else f"{r['ratio']:.3f}"]
                for r in result["commands"]]
        lines.append(table_text(headers, rows))
    return "\n".join(lines)


def geometric_mean(values: list[float]) -> float | None:
    values = [v for v in values if v > 0 and math.isfinite(v)]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))
