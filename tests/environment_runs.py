"""What a run records of its machines: the environment's fields, fake machine trees (PARALLUX_MACHINE_ROOT) with
an identity and noise of their own, and the records and warnings a run's log and stderr hold.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.machine_tree import fake_environment, fake_machine

FIELDS = {"hostname", "os", "kernel", "arch", "cpu_model", "microcode", "sockets", "cores_per_socket",
          "threads_per_core", "logical_cpus", "numa_nodes", "memory_bytes", "cpufreq_driver", "governors", "min_khz",
          "max_khz", "turbo", "isolated", "nohz_full", "load", "cpus", "python"}


def noisy_tree(root: Path, **options: object) -> Path:
    """Four CPUs, two cores of two threads, in two packages; powersave, turbo on, CPU 3 isolated."""
    fake_machine(root, [[0, 2], [1, 3]], boot_id="noisy-boot", machine_id="noisy-machine")
    return fake_environment(root, [0, 1, 2, 3], **{"governor": "powersave", "turbo": "on", "isolated": "3",
                                                    "packages": [0, 1, 0, 1], **options})  # type: ignore[arg-type]


HOST = os.uname()[1]


def log_of(stderr: str) -> list[dict[str, Any]]:
    path = next(line.split(": ", 1)[1] for line in stderr.splitlines() if line.strip().startswith("run log:"))
    return [json.loads(line) for line in Path(path.strip()).read_text().splitlines()]


def events(log: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [record for record in log if record["event"] == kind]


def attempts(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of commands that ran: a ``started`` record is written only for an attempt still running at
    a flush of the log, and every attempt's end (``retrying``, ``finished``) repeats its fields."""
    return [record for record in log if record["event"] in ("started", "retrying", "finished") and record.get("runner")]


def first_attempt(log: list[dict[str, Any]]) -> int:
    """Where the first record of a command that ran is."""
    return next(index for index, record in enumerate(log) if record in attempts(log))


def position(log: list[dict[str, Any]], kind: str, last: bool = False) -> int:
    found = [index for index, record in enumerate(log) if record["event"] == kind]
    return found[-1] if last else found[0]


def tree(root: Path, boot_id: str, siblings: list[list[int]] | None = None, **options: Any) -> Path:
    """A fake machine on this VM's first CPUs, with an identity of its own (a machine of its own)."""
    cores = siblings or [[cpu] for cpu in sorted(os.sched_getaffinity(0))[:2]]
    fake_machine(root, cores, boot_id=boot_id, machine_id=boot_id)
    return fake_environment(root, sorted(cpu for core in cores for cpu in core), **options)


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "may be noisy" in line]
