"""The launcher's one place for the machine's facts (``_launcher.MachineFacts``), rooted at
PARALLUX_MACHINE_ROOT, and what the launcher reports and does with them: its hello's machine identity and SMT
siblings, its own affinity and the CPUs a command is spawned on."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from parallux import _launcher
from parallux._launcher import MachineFacts, parse_cpu_list
from tests.machine_tree import fake_machine
from tests.launcher_client import LAUNCHER


# --- the reader ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "cpus"), [("0", [0]), ("0-3", [0, 1, 2, 3]), ("0-1,4,6-7\n", [0, 1, 4, 6, 7]),
                                            ("", []), ("2,x", None), ("3-1", None)])
def test_parse_cpu_list_reads_the_kernels_lists(text: str, cpus: list[int] | None) -> None:
    assert parse_cpu_list(text) == cpus


def test_machine_facts_read_below_the_root(tmp_path: Path) -> None:
    fake_machine(tmp_path, [[0, 1], [2, 3]], boot_id="b-1", machine_id="m-1")
    facts = MachineFacts(str(tmp_path))
    assert facts.read("proc/sys/kernel/random/boot_id") == "b-1"
    assert facts.read("/etc/machine-id") == "m-1"  # a leading slash is below the root too
    assert facts.cpu_list("sys/devices/system/cpu/online") == [0, 1, 2, 3]
    assert facts.identity() == {"boot_id": "b-1", "machine_id": "m-1"}
    assert facts.online() == [0, 1, 2, 3]
    assert facts.siblings([0, 1, 2, 3]) == [[0, 1], [2, 3]]
    assert facts.siblings([3]) == [[2, 3]]


def test_machine_facts_missing_files_are_unknown_not_errors(tmp_path: Path) -> None:
    facts = MachineFacts(str(tmp_path))
    assert facts.read("proc/cpuinfo") is None
    assert facts.cpu_list("sys/devices/system/cpu/online") is None
    assert facts.identity() == {"boot_id": None, "machine_id": None}
    assert facts.siblings([0, 1]) == [[0], [1]]  # no topology: each CPU a core of its own


def test_machine_facts_default_to_the_real_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_launcher.MACHINE_ROOT_VAR, raising=False)
    facts = MachineFacts()
    assert facts.root == "/"
    assert facts.identity()["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    monkeypatch.setenv(_launcher.MACHINE_ROOT_VAR, "/somewhere")
    assert MachineFacts().root == "/somewhere"
    assert MachineFacts("/given").root == "/given"


def test_machine_facts_the_launcher_reads_the_system_only_through_them() -> None:
    """Machine facts (/sys, /etc, /proc/<not a process>) are read nowhere else in the launcher; a process's own
    files (/proc/PID/..., /proc/self/...) are not machine facts."""
    tree = ast.parse(LAUNCHER.read_text())
    facts_class = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "MachineFacts")
    inside = {id(node) for node in ast.walk(facts_class)}
    stray = [node.value for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inside
             and re.match(r"/?(sys|etc)/|/?proc/(?!%s|self/|\d)[a-z]", node.value)]
    assert stray == []
