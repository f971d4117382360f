"""What differs between two runs' machines, probes and config (SPEC 17), which ``compare`` lists before its
rows: a number is worth little next to one measured on another governor, kernel or commit.

Machines are matched by label, probes by machine and name. Every field that describes a machine counts (its
environment, its machine id); its load does not (it always differs), nor its boot id (a reboot changes it,
and what a reboot changes is in the environment). A machine in one run only is one difference (its probes
are not listed again).
"""

from __future__ import annotations

import json
from typing import Any

from .._printable import printable
from .._sizes import format_size
from .machines import config_of, governors_text, machines_of, recorded
from .output import compress_cores
from .records import Run

NOT_COMPARED = ("load",)  # environment fields that differ from run to run on the same machine
PROBE_COMPARED = ("output", "returncode", "error", "command")


def environment_of(run: Run) -> dict[str, Any]:
    """What compare needs of a run to tell the differences (small: it travels from the child that read it)."""
    return {"recorded": recorded(run), "machines": machines_of(run), "config": config_of(run)}


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Each difference: ``{what: machine|probe|config, machine: label|None, probe: name|None, field, a, b}``
    (an output's also ``line``: the first that differs, from 1; ``a`` and ``b`` are that line of each). None
    when neither run recorded its machines and config: nothing can be told."""
    if not a["recorded"] and not b["recorded"]:
        return None
    found: list[dict[str, Any]] = []
    machines_a = {m["label"]: m for m in a["machines"]}
    machines_b = {m["label"]: m for m in b["machines"]}
    both = [label for label in machines_a if label in machines_b]
    for label in [*machines_a, *(label for label in machines_b if label not in machines_a)]:
        x, y = machines_a.get(label), machines_b.get(label)
        if x is None or y is None:
            found.append(_entry("machine", label, None, "present", x is not None, y is not None))
            continue
        found += _machine_differences(label, x, y)
    for label in both:
        found += _probe_differences(label, machines_a[label]["probes"], machines_b[label]["probes"])
    return found + _config_differences(a["config"], b["config"])


def _entry(what: str, machine: str | None, probe: str | None, field: str, a: Any, b: Any) -> dict[str, Any]:
    return {"what": what, "machine": machine, "probe": probe, "field": field, "a": a, "b": b}


def _machine_differences(label: str, x: dict[str, Any], y: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    if x["machine_id"] != y["machine_id"]:
        found.append(_entry("machine", label, None, "machine_id", x["machine_id"], y["machine_id"]))
    env_x, env_y = x["environment"] or {}, y["environment"] or {}
    for field in [*env_x, *(k for k in env_y if k not in env_x)]:  # (fields a later parallux adds count too)
        if field not in NOT_COMPARED and env_x.get(field) != env_y.get(field):
            found.append(_entry("machine", label, None, field, env_x.get(field), env_y.get(field)))
    return found


def _probe_differences(label: str, x: dict[str, Any], y: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for name in [*x, *(n for n in y if n not in x)]:
        if name not in x or name not in y:
            found.append(_entry("probe", label, name, "present", name in x, name in y))
            continue
        for field in PROBE_COMPARED:
            a, b = x[name][field], y[name][field]
            if field == "output" and (a or "") != (b or ""):
                line, first_a, first_b = first_difference(a or "", b or "")
                found.append({**_entry("probe", label, name, field, first_a, first_b), "line": line})
            elif field != "output" and a != b:
                found.append(_entry("probe", label, name, field, a, b))
    return found


def first_difference(a: str, b: str) -> tuple[int, str | None, str | None]:
    """The number (from 1) of the first line that differs between two texts that differ, and that line of
    each (None: that text has no such line). Lines are compared with their ends, so that a difference in a
    final newline is found; they are given without it, unless that is the whole difference."""
    lines_a, lines_b = a.splitlines(keepends=True), b.splitlines(keepends=True)
    index = next((i for i, (x, y) in enumerate(zip(lines_a, lines_b)) if x != y), min(len(lines_a), len(lines_b)))
    line_a = lines_a[index] if index < len(lines_a) else None
    line_b = lines_b[index] if index < len(lines_b) else None
    bare_a, bare_b = (None if t is None else t.rstrip("\r\n") for t in (line_a, line_b))
    return (index + 1, bare_a, bare_b) if bare_a != bare_b else (index + 1, line_a, line_b)


def _config_differences(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    git_a, git_b = a["git"] or {}, b["git"] or {}
    pairs = (("sha256", a["sha256"], b["sha256"]), ("commit", git_a.get("commit"), git_b.get("commit")),
             ("dirty", git_a.get("dirty"), git_b.get("dirty")))
    return [_entry("config", None, None, field, x, y) for field, x, y in pairs if x != y]


# -- as text (compare) -----------------------------------------------------------------------------------------


def differences_text(found: list[dict[str, Any]] | None) -> list[str]:
    """compare's lines about them: a heading and a line each, one line when there is none, nothing when
    neither run recorded them."""
    if found is None:
        return []
    if not found:
        return ["", "No difference in machines, probes or config."]
    return ["", "Differences between the runs:", *(printable("  " + difference_line(d)) for d in found)]


def difference_line(difference: dict[str, Any]) -> str:
    what, field, a, b = difference["what"], difference["field"], difference["a"], difference["b"]
    where = {"machine": f"machine {difference['machine']}", "config": "config",
             "probe": f"probe {difference['probe']} on {difference['machine']}"}[what]
    if field == "present":
        return f"{where}: only in {'A' if a else 'B'}"
    if what == "probe" and field == "output":
        return f"{where}: output line {difference['line']}: {_line(a)} -> {_line(b)}"
    text_a, text_b = value_text(field, a), value_text(field, b)
    if text_a == text_b:  # (shortened alike: a few bytes of memory, the same first digits of a hash)
        text_a, text_b = json.dumps(a), json.dumps(b)
    return f"{where}: {'git commit' if what == 'config' and field == 'commit' else field} {text_a} -> {text_b}"


def _line(line: str | None) -> str:
    return "(no such line)" if line is None else repr(line)


def value_text(field: str, value: Any) -> str:
    """A value as a person reads it: sizes in GiB, CPUs as ranges, a hash shortened, yes and no."""
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if field == "sha256" and isinstance(value, str):
        return value[:8] + "..."
    if field == "commit" and isinstance(value, str):
        return value[:7]
    if field == "memory_bytes" and isinstance(value, int):
        return format_size(value)
    if field == "governors" and isinstance(value, dict):
        return governors_text(value, cpus=True)
    if isinstance(value, list) and all(type(v) is int for v in value):
        return compress_cores(value) or "none"
    return value if isinstance(value, str) else json.dumps(value)
