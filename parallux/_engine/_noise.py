"""Noise checks (SPEC 17): what on a machine makes the measurements taken there vary, named from its recorded
environment and the run's core pools on it.

A run that measures (a benchmark, or a command with ``metrics=``) is checked, machine by machine, for a CPU
frequency governor other than ``performance``, turbo (boost) on, a load average above 10% of its CPUs at the
start, and SMT siblings of pooled CPUs left outside every pool (what runs there -- the launchers, commands
without a lease -- shares a physical core with a pinned command). pyperf's ``system tune`` and BenchExec's
turbo warning are the model. ``goal.setNoiseCheck()`` decides what a finding does: ``"warn"`` (one line per
machine), ``"strict"`` (a ``ConfigError``) or ``"off"``.
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple, Sequence

from ._seat import cpu_list

NOISE_MODES = ("warn", "strict", "off")
LOAD_SHARE = 0.1  # a load average above this share of the CPUs at the start is other work


class Finding(NamedTuple):
    """One check that failed on one machine: which (``governor``, ``turbo``, ``load``, ``smt``), and why."""

    check: str
    text: str

    def message(self, label: str) -> str:
        return f"machine {label}: {self.text}"


def findings(environment: dict[str, Any] | None, siblings: Iterable[Sequence[int]] | None,
             pooled: Iterable[int]) -> list[Finding]:
    """What makes measurements on a machine noisy: from its environment (as recorded), its physical cores
    (lists of SMT threads) and the CPUs its core pools may lease."""
    found: list[Finding] = []
    environment = environment or {}
    slow = {governor: cpus for governor, cpus in (environment.get("governors") or {}).items()
            if governor != "performance"}
    if slow:
        named = ", ".join(f"{governor} on {cpu_list(cpus)}" for governor, cpus in sorted(slow.items()))
        found.append(Finding("governor", f"CPU frequency governor {named} (not performance): the clock follows "
                                         "the load, so a command's speed depends on what ran before it"))
    if environment.get("turbo") == "on":
        found.append(Finding("turbo", "turbo boost is on: the clock varies with temperature and with how many "
                                      "cores are busy"))
    load, count = environment.get("load"), environment.get("logical_cpus") or len(environment.get("cpus") or ())
    if load and count and load[0] > LOAD_SHARE * count:
        found.append(Finding("load", f"load average {load[0]:.2f} at the start, above {LOAD_SHARE:.0%} of its "
                                     f"{count} CPUs: other work runs there"))
    smt = shared_cores(siblings or (), set(pooled))
    if smt is not None:
        outside, inside = smt
        found.append(Finding("smt", f"{cpu_list(outside)}, SMT siblings of pooled {cpu_list(inside)}, "
                                    f"{'is' if len(outside) == 1 else 'are'} outside every core pool: what runs "
                                    "there shares a physical core with a pinned command; pool "
                                    f"{'it' if len(outside) == 1 else 'them'} too, or use whole_cores=True"))
    return found


def shared_cores(siblings: Iterable[Sequence[int]], pooled: set[int]) -> tuple[list[int], list[int]] | None:
    """The CPUs outside the pools that share a physical core with a pooled one, and those pooled ones."""
    outside: set[int] = set()
    inside: set[int] = set()
    for core in siblings:
        threads = set(core)
        if threads & pooled and threads - pooled:
            outside |= threads - pooled
            inside |= threads & pooled
    return (sorted(outside), sorted(inside)) if outside else None


def warning(label: str, found: list[Finding]) -> str:
    """The one line a machine's findings make under ``"warn"``."""
    return (f"warning: measurements on machine {label} may be noisy: " + "; ".join(f.text for f in found)
            + ' (goal.setNoiseCheck("off") silences this)')


def refusal(messages: list[str]) -> str:
    """The ConfigError's text under ``"strict"``."""
    return ('the noise check (goal.setNoiseCheck("strict")) refuses to measure here: ' + "; ".join(messages)
            + "; the run stops before its first measuring command")
