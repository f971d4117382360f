"""A fake machine for PARALLUX_MACHINE_ROOT: a directory laid out like ``/`` with the files the launcher reads
(CPU topology, boot id, machine id), so SMT siblings and other machines can be tested on this 2-CPU VM."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

REAL_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
REAL_MACHINE_ID = Path("/etc/machine-id")


def cpu_text(cpus: Sequence[int]) -> str:
    return ",".join(str(cpu) for cpu in cpus)


def fake_machine(root: Path, siblings: Sequence[Sequence[int]], *, boot_id: str | None = "fake-boot",
                 machine_id: str | None = "fake-machine") -> Path:
    """``root`` as a machine whose physical cores have these logical CPUs (``[[0, 1], [2, 3]]``: two cores with
    two threads each); a None identity leaves its file out."""
    cpus = sorted(cpu for core in siblings for cpu in core)
    system = root / "sys/devices/system/cpu"
    system.mkdir(parents=True, exist_ok=True)
    (system / "online").write_text(f"{min(cpus)}-{max(cpus)}\n" if cpus == list(range(min(cpus), max(cpus) + 1))
                                   else cpu_text(cpus) + "\n")
    for core in siblings:
        for cpu in core:
            topology = system / f"cpu{cpu}/topology"
            topology.mkdir(parents=True, exist_ok=True)
            (topology / "thread_siblings_list").write_text(cpu_text(sorted(core)) + "\n")
    if boot_id is not None:
        (root / "proc/sys/kernel/random").mkdir(parents=True, exist_ok=True)
        (root / "proc/sys/kernel/random/boot_id").write_text(boot_id + "\n")
    if machine_id is not None:
        (root / "etc").mkdir(parents=True, exist_ok=True)
        (root / "etc/machine-id").write_text(machine_id + "\n")
    return root


def same_machine(root: Path, siblings: Sequence[Sequence[int]]) -> Path:
    """A fake tree with this machine's own identity (so its runner shares this machine) and the given topology."""
    return fake_machine(root, siblings, boot_id=REAL_BOOT_ID.read_text().strip(),
                        machine_id=REAL_MACHINE_ID.read_text().strip() if REAL_MACHINE_ID.exists() else None)
