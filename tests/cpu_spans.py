"""Commands that say when they ran and on which CPUs (theirs and their launcher's), and the pairs of them that
shared a CPU at the same time: how runners on one machine are seen to share one core allocator.
"""

from __future__ import annotations

import itertools
import json
import os
import textwrap
from pathlib import Path

import pytest

from parallux._launcher import parse_cpu_list
from tests.helpers import write_config

CPUS = sorted(os.sched_getaffinity(0))
HOST = os.uname()[1]
needs_two_cpus = pytest.mark.skipif(CPUS[:2] != [0, 1], reason="needs CPUs 0 and 1")

# Each command says when it ran, on which CPUs, and on which its launcher (its parent) runs.
SPAN = ('s=$(date +%s.%N); sleep 0.4; '
        'echo "$s $(date +%s.%N) $(grep Cpus_allowed_list /proc/self/status | cut -f2) '
        '$(grep Cpus_allowed_list /proc/$PPID/status | cut -f2) ${PARALLUX_CORES:--}"')


def spans(text: str) -> list[tuple[float, float, set[int], set[int], str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("span "):
            _, name, start, end, own, launcher, leased = line.split()
            rows.append((float(start), float(end), set(parse_cpu_list(own) or []), set(parse_cpu_list(launcher) or []),
                         f"{name} {leased}"))
    return rows


def shared_cpu_at_once(rows: list[tuple[float, float, set[int], set[int], str]]) -> list[str]:
    """Pairs of commands that ran at the same time on a common CPU."""
    return [f"{a[4]} and {b[4]} on CPUs {sorted(a[2] & b[2])}" for a, b in itertools.combinations(rows, 2)
            if a[2] & b[2] and a[0] < b[1] and b[0] < a[1]]


def log_of(stderr: str) -> list[dict]:
    path = next(line.split(": ", 1)[1] for line in stderr.splitlines() if line.strip().startswith("run log:"))
    return [json.loads(line) for line in Path(path.strip()).read_text().splitlines()]


PRINT_SPANS = """
for r in results:
    assert r.status == "ok", (r.name, r.status, r.read_stderr())
    print("span", r.name, r.read_stdout().strip())
"""


def write_spans_config(directory: Path, source: str) -> None:
    """A config that ends by printing each of its ``results`` as a span line."""
    write_config(directory, textwrap.dedent(source) + PRINT_SPANS)
