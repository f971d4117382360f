"""The launcher as a real subprocess, reporting the machine's facts (``_launcher.MachineFacts``, rooted at
PARALLUX_MACHINE_ROOT): its hello's machine identity and SMT siblings, its own affinity and the CPUs a command
is spawned on.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from parallux import _launcher
from parallux._launcher import parse_cpu_list
from tests.machine_tree import fake_machine
from tests.launcher_client import LauncherClient, sh

CPUS = sorted(os.sched_getaffinity(0))


def allowed_list(text: str) -> str:
    match = re.search(r"Cpus_allowed_list:\s*(\S+)", text)
    assert match, text
    return match.group(1)


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
        own, _ = (tmp_path / "leased/stdout.txt").read_text().splitlines()
        assert allowed_list(own) == str(other)  # (numactl, which would bind it, refuses a CPU outside)
        # The launcher went back home (read after the command, not by it: the command may read its parent
        # before the launcher, back from the spawn, has moved -- seen under load)
        assert sorted(os.sched_getaffinity(launcher_pid)) == [home]
        client.send(op="affinity", cpus=None)  # the pools left no CPU outside: back to every CPU
        client.run(3, sh(script), tmp_path / "shared")
        assert allowed_list((tmp_path / "shared/stdout.txt").read_text().splitlines()[0]) == allowed_list(
            Path("/proc/self/status").read_text())
    finally:
        client.shut_down()
