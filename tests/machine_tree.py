"""A fake machine for PARALLUX_MACHINE_ROOT: a directory laid out like ``/`` with the files the launcher reads
(CPU topology, boot id, machine id), so SMT siblings and other machines can be tested on this 2-CPU VM."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

REAL_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
REAL_MACHINE_ID = Path("/etc/machine-id")


def cpu_text(cpus: Sequence[int]) -> str:
    return ",".join(str(cpu) for cpu in cpus)


def fake_machine(root: Path, siblings: Sequence[Sequence[int]], *, boot_id: str | None = "fake-boot",
                 machine_id: str | None = "fake-machine", gpus: Sequence[int | None] = (),
                 numa: Mapping[int, Sequence[int]] | None = None) -> Path:
    """``root`` as a machine whose physical cores have these logical CPUs (``[[0, 1], [2, 3]]``: two cores with
    two threads each); a None identity leaves its file out. ``gpus``: the NUMA node of each GPU (by index; None:
    the machine does not say), at the PCI addresses :func:`fake_nvidia_smi` reports; ``numa``: each NUMA
    node's CPUs."""
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
    for index, node in enumerate(gpus):
        device = root / f"sys/bus/pci/devices/{pci_address(index).lower()[4:]}"
        device.mkdir(parents=True, exist_ok=True)
        (device / "numa_node").write_text(f"{-1 if node is None else node}\n")
    for node, members in (numa or {}).items():
        (root / f"sys/devices/system/node/node{node}").mkdir(parents=True, exist_ok=True)
        (root / f"sys/devices/system/node/node{node}/cpulist").write_text(cpu_text(members) + "\n")
    return root


def pci_address(index: int) -> str:
    """GPU ``index``'s PCI bus id as nvidia-smi prints it (an 8-digit domain, upper case)."""
    return f"00000000:{index + 0x3B:02X}:00.0"


def fake_nvidia_smi(directory: Path, count: int, *, fail: str | None = None) -> Path:
    """An ``nvidia-smi`` in ``directory`` reporting ``count`` GPUs at :func:`pci_address` (``fail``: it says
    that on stderr and exits 9, as on a machine whose driver is broken). ``-L`` lists them, as the real one
    does, whatever CUDA_VISIBLE_DEVICES says."""
    directory.mkdir(parents=True, exist_ok=True)
    query = "".join(f"{i}, {pci_address(i)}\\n" for i in range(count))
    listing = "".join(f"GPU {i}: Fake GPU (UUID: GPU-fake-{i})\\n" for i in range(count))
    failing = f"echo {fail!r} >&2; exit 9\n" if fail else ""
    script = directory / "nvidia-smi"
    script.write_text(f"""#!/bin/sh
{failing}case "$*" in
  "--query-gpu=index,pci.bus_id --format=csv,noheader") printf '{query}' ;;
  "-L") printf '{listing}' ;;
  "--query-gpu=uuid --format=csv,noheader -i "*)
    if [ "$4" -ge 0 ] 2>/dev/null && [ "$4" -lt {count} ]; then echo "GPU-fake-$4"; else
      echo "No devices were found" >&2; exit 6; fi ;;
  *) echo "fake nvidia-smi: unknown arguments: $*" >&2; exit 2 ;;
esac
""")
    script.chmod(0o755)
    return script


def same_machine(root: Path, siblings: Sequence[Sequence[int]]) -> Path:
    """A fake tree with this machine's own identity (so its runner shares this machine) and the given topology."""
    return fake_machine(root, siblings, boot_id=REAL_BOOT_ID.read_text().strip(),
                        machine_id=REAL_MACHINE_ID.read_text().strip() if REAL_MACHINE_ID.exists() else None)


def fake_environment(root: Path, cpus: Sequence[int], *, governor: str | None = "performance",
                     turbo: str | None = "off", load: str = "0.00 0.01 0.05 1/100 4242", isolated: str | None = "",
                     cmdline: str = "quiet nohz_full=1", packages: Sequence[int] | None = None) -> Path:
    """The files of ``root`` that the environment capture reads (SPEC 17), beside what :func:`fake_machine`
    wrote: os-release, cpuinfo, meminfo, the load, NUMA nodes, each CPU's package and its frequency scaling
    (``governor``, 1-3 GHz, intel_pstate), turbo (``"on"``: intel_pstate/no_turbo 0), isolated CPUs and the
    kernel command line. None leaves a file out."""
    def write(relpath: str, text: str) -> None:
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    write("etc/os-release", 'NAME="Fake"\nPRETTY_NAME="Fake Linux 1 (test)"\n')
    write("proc/cpuinfo", "".join(f"processor\t: {cpu}\nmodel name\t: Fake CPU @ 3.00GHz\nmicrocode\t: 0x2a\n\n"
                                  for cpu in cpus))
    write("proc/meminfo", "MemTotal:       4096 kB\nMemFree:         1024 kB\n")
    write("proc/loadavg", load + "\n")
    write("proc/cmdline", cmdline + "\n")
    write("sys/devices/system/node/online", "0\n")
    system = "sys/devices/system/cpu"
    for index, cpu in enumerate(cpus):
        write(f"{system}/cpu{cpu}/topology/physical_package_id", f"{packages[index] if packages else 0}\n")
        if governor is not None:
            write(f"{system}/cpu{cpu}/cpufreq/scaling_governor", governor + "\n")
            write(f"{system}/cpu{cpu}/cpufreq/scaling_driver", "intel_pstate\n")
            write(f"{system}/cpu{cpu}/cpufreq/scaling_min_freq", f"{1000000 + cpu * 1000}\n")
            write(f"{system}/cpu{cpu}/cpufreq/scaling_max_freq", f"{3000000 + cpu * 1000}\n")
    if turbo is not None:
        write(f"{system}/intel_pstate/no_turbo", "0\n" if turbo == "on" else "1\n")
    if isolated is not None:
        write(f"{system}/isolated", isolated + "\n")
    return root
