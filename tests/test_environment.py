"""What a run records of its machines (SPEC 17, issue 21): the environment each launcher reads through
MachineFacts (a fake tree, PARALLUX_MACHINE_ROOT, gives it governors, turbo and isolated CPUs this VM lacks),
the load, and goal.probe()'s commands -- first the launcher's requests, then through the real CLI."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from parallux import _launcher
from parallux._launcher import MachineFacts
from tests.helpers import kill_pids, new_token, pids_with_arg, wait_until
from tests.machine_tree import fake_environment, fake_machine
from tests.test_launcher import LauncherClient

FIELDS = {"hostname", "os", "kernel", "arch", "cpu_model", "microcode", "sockets", "cores_per_socket",
          "threads_per_core", "logical_cpus", "numa_nodes", "memory_bytes", "cpufreq_driver", "governors", "min_khz",
          "max_khz", "turbo", "isolated", "nohz_full", "load", "cpus", "python"}


def noisy_tree(root: Path, **options: object) -> Path:
    """Four CPUs, two cores of two threads, in two packages; powersave, turbo on, CPU 3 isolated."""
    fake_machine(root, [[0, 2], [1, 3]], boot_id="noisy-boot", machine_id="noisy-machine")
    return fake_environment(root, [0, 1, 2, 3], **{"governor": "powersave", "turbo": "on", "isolated": "3",
                                                    "packages": [0, 1, 0, 1], **options})  # type: ignore[arg-type]


# --- MachineFacts.environment ----------------------------------------------------------------------------------


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


# --- the launcher's requests -------------------------------------------------------------------------------------


def launcher_on(tmp_path: Path, root: Path | None = None) -> LauncherClient:
    env = {key: value for key, value in os.environ.items() if key != _launcher.MACHINE_ROOT_VAR}
    if root is not None:
        env[_launcher.MACHINE_ROOT_VAR] = str(root)
    return LauncherClient(tmp_path, env=env)


def test_environment_and_load_requests(tmp_path: Path) -> None:
    client = launcher_on(tmp_path, noisy_tree(tmp_path / "machine"))
    try:
        client.send(op="environment", id=3, cpus=[2])
        event = client.expect("environment", 3)
        assert event["environment"]["governors"] == {"powersave": [2]}
        assert event["environment"]["turbo"] == "on"
        client.send(op="load", id=4)
        assert client.expect("load", 4)["load"] == [0.0, 0.01, 0.05]
    finally:
        client.shut_down()


def test_environment_probe_sends_stdout_then_stderr_and_the_status(tmp_path: Path) -> None:
    client = launcher_on(tmp_path)
    try:
        client.send(op="probe", id=5, command="echo out; echo err >&2; echo \"$PROBE_VAR\"; exit 3",
                    env={"PROBE_VAR": "from env"})
        event = client.expect("probe", 5)
        assert event == {"ev": "probe", "id": 5, "returncode": 3, "output": "out\nfrom env\nerr\n",
                         "truncated": False, "error": None}
    finally:
        client.shut_down()


def test_environment_probe_keeps_the_first_4096_bytes(tmp_path: Path) -> None:
    client = launcher_on(tmp_path)
    try:
        client.send(op="probe", id=6, command="head -c 5000 /dev/zero | tr '\\0' x; echo tail >&2")
        event = client.expect("probe", 6)
        assert event["output"] == "x" * 4096 and event["truncated"] is True and event["returncode"] == 0
        client.send(op="probe", id=7, command="head -c 4096 /dev/zero | tr '\\0' y")
        event = client.expect("probe", 7)
        assert event["output"] == "y" * 4096 and event["truncated"] is False
    finally:
        client.shut_down()


def test_environment_probe_timeout_kills_its_group_and_says_so(tmp_path: Path) -> None:
    client = launcher_on(tmp_path)
    token = new_token()
    try:
        client.send(op="probe", id=8, timeout=0.5, command=f"echo started; (sleep 30) & sleep 30 # {token}")
        event = client.expect("probe", 8)
        assert event["returncode"] is None and event["error"] == "timed out after 0.5 s"
        assert event["output"] == "started\n"
        assert wait_until(lambda: not pids_with_arg(token), 5)  # its background child went with it
        client.send(op="ping")  # the loop served on meanwhile
        client.expect("pong")
    finally:
        client.shut_down()
        kill_pids(pids_with_arg(token))


def test_environment_probe_that_cannot_start_is_an_error_not_a_crash(tmp_path: Path) -> None:
    client = launcher_on(tmp_path)
    try:
        client.send(op="probe", id=9, command="echo a\0b")
        event = client.expect("probe", 9)
        assert event["returncode"] is None and "null" in event["error"]
        client.send(op="probe", id=10, command="no-such-program-xyz")
        event = client.expect("probe", 10)
        assert event["returncode"] == 127 and "not found" in event["output"] and event["error"] is None
    finally:
        client.shut_down()
