"""What a run records of its machines (SPEC 17, issue 21): the environment each launcher reads through
MachineFacts (a fake tree, PARALLUX_MACHINE_ROOT, gives it governors, turbo and isolated CPUs this VM lacks),
the load, and goal.probe()'s commands -- first the launcher's requests, then through the real CLI."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from parallux import _launcher
from tests.environment_runs import FIELDS, HOST, attempts, events, first_attempt, log_of, noisy_tree, position, tree, \
    warnings_of
from tests.helpers import kill_pids, new_token, pids_with_arg, run_cli, wait_until, write_config
from tests.launcher_client import LauncherClient


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


# --- through the real CLI: the run log's records ---------------------------------------------------------------

REAL_BOOT_ID = Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def test_environment_a_machine_is_recorded_once_before_its_commands_with_its_probes(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        a = goal.local("a", workspace="ws")
        b = goal.local("b", workspace="ws")
        goal.setRunner([a, b])
        goal.setEnv("GREETING", "hello")
        goal.probe("greeting", 'echo "$GREETING from $PARALLUX_RUNNER"; echo to-stderr >&2')
        goal.probe("fails", "echo partial; exit 3")
        for i in range(4):
            goal.schd("true")
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr  # (a probe that fails fails nothing)
    log = log_of(done.stderr)
    [machine] = events(log, "machine")
    assert machine["label"] == HOST and machine["runners"] == ["a"]  # (b joined a known machine: nothing new)
    assert machine["boot_id"] == REAL_BOOT_ID
    assert set(machine["environment"]) == FIELDS | {"parallux"}
    assert machine["environment"]["cpu_model"] and machine["environment"]["memory_bytes"] > 0
    assert machine["environment"]["cpus"] == sorted(os.sched_getaffinity(0))  # no pool: every online CPU
    probes = {probe["name"]: probe for probe in events(log, "probe")}
    assert probes["greeting"] == {**probes["greeting"], "machine": HOST, "runner": "a", "returncode": 0,
                                  "output": "hello from a\nto-stderr\n", "truncated": False, "error": None}
    assert (probes["fails"]["returncode"], probes["fails"]["output"]) == (3, "partial\n")
    assert len(events(log, "probe")) == 2  # once per machine, not per runner
    first_command = first_attempt(log)
    assert position(log, "machine") < first_command and position(log, "probe", last=True) < first_command
    [load] = events(log, "machine_load")
    assert load["label"] == HOST and len(load["load"]) == 3
    assert position(log, "finished", last=True) < position(log, "machine_load") < position(log, "run_finished")


@pytest.mark.parametrize(("call", "message"), [
    ('goal.probe("a", "true"); goal.probe("a", "false")', "a probe named 'a' was declared already"),
    ('goal.probe(3, "true")', "goal.probe(): name must be a non-empty str, not 3"),
    ('goal.probe("a", 5)', "goal.probe(): command must be a str or a list of arguments, not int (5)"),
    ('goal.probe("a", "  ")', "the command is empty"),
    ('goal.probe("a", "true", timeout=3)', "goal.probe(): unknown"),
    ('goal.run("true").sync(); goal.probe("late", "true")', "goal.probe('late') comes after the first command"),
    ('goal.setNoiseCheck("loud")', "setNoiseCheck() mode must be one of warn, strict, off, not 'loud'"),
])
def test_environment_probe_and_noise_check_arguments_are_checked(tmp_path: Path, call: str, message: str) -> None:
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws")
        {call}
    """)
    done = run_cli(tmp_path, "config.py")
    assert message in done.stderr, done.stderr
    assert done.returncode == (2 if "late" not in call else 1), done.stderr  # (exit 2 only before any command)


def test_environment_dry_run_prints_the_probes_and_reads_no_machine(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        goal.probe("gcc", ["gcc", "--version"])
        goal.setNoiseCheck("strict")
        goal.schd("true", repeat=2)
    """)
    done = run_cli(tmp_path, "--dry-run", "config.py")
    assert done.returncode == 0, done.stderr
    assert "probe gcc: gcc --version (once on every machine, before its commands" in done.stdout
    assert "noise" not in done.stderr


# --- noise checks ---------------------------------------------------------------------------------------------------


def noise_config(tmp_path: Path, root: Path, body: str, mode: str | None = None, **runner: Any) -> None:
    options = "".join(f", {key}={value!r}" for key, value in runner.items())
    lines = ["from parallux import goal",
             f'goal.local(workspace="ws", env={{"PARALLUX_MACHINE_ROOT": {str(root)!r}}}{options})']
    if mode is not None:
        lines.append(f"goal.setNoiseCheck({mode!r})")
    write_config(tmp_path, "\n".join(lines) + "\n" + textwrap.dedent(body))


MEASURING = """
    goal.schd("true", repeat=2)
"""


def test_environment_a_measuring_run_warns_once_per_noisy_machine(tmp_path: Path) -> None:
    noise_config(tmp_path, tree(tmp_path / "m", "noisy", governor="powersave", turbo="on"), MEASURING)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    [line] = warnings_of(done.stderr)
    assert line.startswith("parallux: warning: measurements on machine ")
    assert "CPU frequency governor powersave on CPUs 0-1 (not performance)" in line and "turbo boost is on" in line
    noise = events(log_of(done.stderr), "noise")
    assert [(n["check"], n["machine"]) for n in noise] == [("governor", HOST), ("turbo", HOST)]
    assert noise[0]["message"].startswith(f"machine {HOST}: CPU frequency governor powersave on CPUs 0-1")


def test_environment_metrics_make_a_run_measure(tmp_path: Path) -> None:
    noise_config(tmp_path, tree(tmp_path / "m", "noisy", governor="powersave"), """
        goal.run("echo 'v: 1'", metrics={"v": "v: ([0-9]+)"})
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert len(warnings_of(done.stderr)) == 1
    assert [n["check"] for n in events(log_of(done.stderr), "noise")] == ["governor"]


def test_environment_a_plain_run_is_not_checked(tmp_path: Path) -> None:
    noise_config(tmp_path, tree(tmp_path / "m", "noisy", governor="powersave", turbo="on"), """
        goal.schd("true")
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert warnings_of(done.stderr) == [] and "noise" not in done.stderr
    assert events(log_of(done.stderr), "noise") == []


def test_environment_strict_refuses_a_noisy_machine_before_anything_starts(tmp_path: Path) -> None:
    noise_config(tmp_path, tree(tmp_path / "m", "noisy", governor="powersave", turbo="on"), MEASURING, "strict")
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2, done.stderr
    assert 'ConfigError: the noise check (goal.setNoiseCheck("strict")) refuses to measure here: ' in done.stderr
    assert "governor powersave" in done.stderr and "turbo boost is on" in done.stderr
    log = log_of(done.stderr)
    assert attempts(log) == [] and not (tmp_path / "ws").exists()
    assert [n["check"] for n in events(log, "noise")] == ["governor", "turbo"]


def test_environment_off_checks_nothing(tmp_path: Path) -> None:
    noise_config(tmp_path, tree(tmp_path / "m", "noisy", governor="powersave", turbo="on"), MEASURING, "off")
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert warnings_of(done.stderr) == [] and events(log_of(done.stderr), "noise") == []


def test_environment_load_at_the_start_is_noise(tmp_path: Path) -> None:
    noise_config(tmp_path, tree(tmp_path / "m", "busy", load="0.50 0.40 0.30 2/100 77"), MEASURING)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    [noise] = events(log_of(done.stderr), "noise")
    assert noise["check"] == "load"
    assert "load average 0.50 at the start, above 10% of its 2 CPUs" in noise["message"]


@pytest.mark.skipif(sorted(os.sched_getaffinity(0))[:2] != [0, 1], reason="needs CPUs 0 and 1")
def test_environment_smt_siblings_outside_the_pool_are_noise_unless_whole_cores(tmp_path: Path) -> None:
    root = tree(tmp_path / "m", "smt", siblings=[[0, 1]])
    noise_config(tmp_path, root, MEASURING, core_pool=[0])
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    [noise] = events(log_of(done.stderr), "noise")
    assert noise["check"] == "smt"
    assert "CPU 1, SMT siblings of pooled CPU 0, is outside every core pool" in noise["message"]
    noise_config(tmp_path, root, MEASURING, core_pool=[0], whole_cores=True)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert events(log_of(done.stderr), "noise") == []


def test_environment_strict_refuses_the_runners_of_a_noisy_machine_that_joins_later(tmp_path: Path) -> None:
    clean = tree(tmp_path / "clean", "clean-boot")
    noisy = tree(tmp_path / "noisy", "noisy-boot", governor="powersave")
    write_config(tmp_path, f"""
        from parallux import goal
        a = goal.local("a", workspace="ws", env={{"PARALLUX_MACHINE_ROOT": {str(clean)!r}}})
        goal.setNoiseCheck("strict")
        assert a.run("true", repeat=2).sync().status == "ok"
        b = goal.local("b", workspace="ws", env={{"PARALLUX_MACHINE_ROOT": {str(noisy)!r}}})
        result = b.run("true", check=False).sync()
        print("b:", result.status, result.error)
        assert a.run("true").sync().status == "ok"  # the run goes on where it can
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("b: "))
    assert line.startswith("b: error no runner left to run it (runner 'b': refused by the strict noise check")
    assert "CPU frequency governor powersave" in line
    log = log_of(done.stderr)
    assert [record["label"] for record in events(log, "machine")] == [HOST, f"{HOST} (noisy-boot)"]
    assert [n["check"] for n in events(log, "noise")] == ["governor"]
