"""What the launcher reads of a machine's environment through MachineFacts (SPEC 17, issue 21), in-process, on
fake trees (PARALLUX_MACHINE_ROOT) with governors, turbo and isolated CPUs this VM lacks; and the findings
that call a machine noisy.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from parallux._launcher import MachineFacts
from tests.environment_runs import FIELDS, noisy_tree


def test_environment_reads_every_field_from_the_tree(tmp_path: Path) -> None:
    environment = MachineFacts(str(noisy_tree(tmp_path))).environment()
    assert set(environment) == FIELDS
    assert environment["os"] == "Fake Linux 1 (test)"
    assert environment["cpu_model"] == "Fake CPU @ 3.00GHz" and environment["microcode"] == "0x2a"
    assert (environment["sockets"], environment["cores_per_socket"], environment["threads_per_core"]) == (2, 1, 2)
    assert environment["logical_cpus"] == 4 and environment["numa_nodes"] == 1
    assert environment["memory_bytes"] == 4096 * 1024
    assert environment["cpufreq_driver"] == "intel_pstate"
    assert environment["governors"] == {"powersave": [0, 1, 2, 3]}
    assert (environment["min_khz"], environment["max_khz"]) == (1000000, 3003000)
    assert environment["turbo"] == "on"
    assert environment["isolated"] == [3]
    assert environment["nohz_full"] == [1]  # no /sys file: the kernel's command line
    assert environment["load"] == [0.0, 0.01, 0.05]
    assert environment["cpus"] == [0, 1, 2, 3]
    assert environment["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert environment["hostname"] == os.uname()[1]  # (the tree has no hostname: the kernel's)


def test_environment_frequency_fields_describe_the_cpus_asked(tmp_path: Path) -> None:
    root = noisy_tree(tmp_path)
    (root / "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor").write_text("performance\n")
    environment = MachineFacts(str(root)).environment([1, 3])
    assert environment["cpus"] == [1, 3]
    assert environment["governors"] == {"performance": [1], "powersave": [3]}
    assert (environment["min_khz"], environment["max_khz"]) == (1001000, 3003000)


def test_environment_turbo_from_cpufreq_boost_and_isolcpus_from_the_command_line(tmp_path: Path) -> None:
    root = noisy_tree(tmp_path, turbo=None, isolated=None, cmdline="ro isolcpus=domain,managed_irq,2-3 quiet")
    (root / "sys/devices/system/cpu/cpufreq").mkdir(parents=True)
    (root / "sys/devices/system/cpu/cpufreq/boost").write_text("0\n")
    environment = MachineFacts(str(root)).environment()
    assert environment["turbo"] == "off"
    assert environment["isolated"] == [2, 3]
    assert environment["nohz_full"] == []  # the command line names none


def test_environment_of_an_empty_tree_is_unknown_not_an_error(tmp_path: Path) -> None:
    environment = MachineFacts(str(tmp_path)).environment()
    assert set(environment) == FIELDS
    assert {key for key, value in environment.items() if value is not None} == {
        "hostname", "kernel", "arch", "cpus", "python"}  # (the running kernel's, from uname)
    assert environment["cpus"] == []


def test_environment_findings_name_every_slow_governor_and_the_split_cores() -> None:
    from parallux._engine._noise import findings
    environment = {"governors": {"performance": [0], "powersave": [1, 2], "schedutil": [3]}, "turbo": "off",
                   "load": [0.4, 0.1, 0.1], "logical_cpus": 4, "cpus": [0, 1, 2, 3]}
    found = findings(environment, [[0, 4], [1, 5], [2, 6], [3, 7]], [0, 1, 4])
    assert [f.check for f in found] == ["governor", "smt"]  # (a load of 0.4 on 4 CPUs is 10%: not above)
    assert found[0].message("vm").startswith(
        "machine vm: CPU frequency governor powersave on CPUs 1-2, schedutil on CPU 3 (not performance)")
    assert found[1].text.startswith("CPU 5, SMT siblings of pooled CPU 1, is outside every core pool")
    assert findings(None, None, []) == []
