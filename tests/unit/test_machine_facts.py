"""The launcher's one place for the machine's facts (``_launcher.MachineFacts``), rooted at
PARALLUX_MACHINE_ROOT, and what the launcher reports and does with them: its hello's machine identity and SMT
siblings, its own affinity and the CPUs a command is spawned on."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

from parallux import _launcher
from parallux._launcher import MachineFacts, parse_cpu_list
from tests.machine_tree import fake_machine
from tests.test_launcher import LAUNCHER, LauncherClient, sh

CPUS = sorted(os.sched_getaffinity(0))


def allowed_list(text: str) -> str:
    match = re.search(r"Cpus_allowed_list:\s*(\S+)", text)
    assert match, text
    return match.group(1)


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


# --- the launcher ---------------------------------------------------------------------------------------------


def test_machine_facts_hello_reports_identity_and_siblings(tmp_path: Path) -> None:
    root = fake_machine(tmp_path / "machine", [[0, 2], [1, 3]], boot_id="b-7", machine_id="m-7")
    client = LauncherClient(tmp_path, env=dict(os.environ, **{_launcher.MACHINE_ROOT_VAR: str(root)}))
    try:
        client.send(op="hello")
        hello = client.expect("hello")
        assert hello["machine"] == {"boot_id": "b-7", "machine_id": "m-7"}
        assert hello["siblings"] == [[0, 2], [1, 3]]
        assert hello["logical_cores"] == 4  # the fake machine's online CPUs
        assert hello["cpus"] == CPUS  # what commands may run on is the real affinity all the same
        other = fake_machine(tmp_path / "other", [[0, 1]], boot_id="b-8", machine_id=None)
        client.send(op="hello", machine_root=str(other))  # parallux's word (a runner's env=) wins
        hello = client.expect("hello")
        assert hello["machine"] == {"boot_id": "b-8", "machine_id": None}
        assert hello["siblings"] == [[0, 1]]
    finally:
        client.shut_down()


def test_machine_facts_hello_on_the_real_machine(tmp_path: Path) -> None:
    client = LauncherClient(tmp_path, env={k: v for k, v in os.environ.items() if k != _launcher.MACHINE_ROOT_VAR})
    try:
        client.send(op="hello")
        hello = client.expect("hello")
        assert hello["machine"]["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        assert sorted(cpu for core in hello["siblings"] for cpu in core) == sorted(
            parse_cpu_list(Path("/sys/devices/system/cpu/online").read_text()))
    finally:
        client.shut_down()


@pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs")
def test_machine_facts_launcher_affinity_and_the_cpus_a_command_is_spawned_on(tmp_path: Path) -> None:
    home, other = CPUS[0], CPUS[1]
    client = LauncherClient(tmp_path)
    try:
        launcher_pid = client.serving_pid()
        client.send(op="affinity", cpus=[home])
        script = "grep Cpus_allowed_list /proc/self/status; grep Cpus_allowed_list /proc/$PPID/status"
        client.run(1, sh(script), tmp_path / "unpinned")
        own, parent = (tmp_path / "unpinned/stdout.txt").read_text().splitlines()
        assert allowed_list(own) == allowed_list(parent) == str(home)
        assert sorted(os.sched_getaffinity(launcher_pid)) == [home]
        client.run(2, sh(script), tmp_path / "leased", cpus=[other])
        own, parent = (tmp_path / "leased/stdout.txt").read_text().splitlines()
        assert allowed_list(own) == str(other)  # (numactl, which would bind it, refuses a CPU outside)
        assert allowed_list(parent) == str(home)  # the launcher went back home at once
        client.send(op="affinity", cpus=None)  # the pools left no CPU outside: back to every CPU
        client.run(3, sh(script), tmp_path / "shared")
        assert allowed_list((tmp_path / "shared/stdout.txt").read_text().splitlines()[0]) == allowed_list(
            Path("/proc/self/status").read_text())
    finally:
        client.shut_down()
