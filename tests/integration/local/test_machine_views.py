"""What a run recorded about its machines, probes and config (SPEC 17), as the views show it, through the real
CLI on synthetic run logs (tests/synthetic.py writes the records as parallux does): show's Machines block and
JSON, and compare's differences between two runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli
from tests.machine_logs import COMMIT_A, GCC_A, NOISE, SHA_A, benchmarks, recorded_log
from tests.synthetic import machine_environment, write_benchmark_log

SHA_B = "9876fedc" + "1" * 56
COMMIT_B = "5e6f7a8b" + "9" * 32
GCC_B = "gcc (Debian 13.1.0-1) 13.1.0\nCopyright (C) 2022 Free Software Foundation, Inc.\n"
def cli(home: Path, *args: str, status: int = 0) -> Any:
    done = run_cli(home, *args)
    assert done.returncode == status, (done.stdout, done.stderr)
    return done


# -- show ---------------------------------------------------------------------------------------------------


def test_show_prints_a_machines_block_with_probes_noise_and_config(tmp_path: Path) -> None:
    log = recorded_log(tmp_path / "a.jsonl")
    text = cli(tmp_path, "show", str(log)).stdout
    lines = text.splitlines()
    start = lines.index("machines")
    assert lines[start - 1] == "" and lines[start - 2].startswith("log      ")  # after the run's header
    assert lines[start + 1:start + 7] == [
        "  vm: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz, 2 sockets x 20 cores x 2 threads, 192 GiB, kernel "
        "6.1.0-18-amd64, governor performance (1000-3900 MHz), turbo off, load 0.12/0.30/0.25 -> 1.50/0.80/0.40 "
        "(runners local, srv)",
        "    probe gcc: gcc (Debian 12.2.0-14) 12.2.0",
        f"    noise: {NOISE}",
        "  n1: 192 GiB, kernel 6.1.0-18-amd64 (runner slurm@n1)",
        "    probe gcc: could not run: sh: gcc: not found",
        "config: /home/perf/bench.py sha256 0123abcd... git 1a2b3c4 (dirty)"]
    assert lines[start + 7] == ""  # then the benchmarks, as before


def test_show_machines_block_names_what_is_unusual(tmp_path: Path) -> None:
    log = recorded_log(tmp_path / "a.jsonl", commit=None, dirty=False, sockets=1, cores_per_socket=1,
                       threads_per_core=1, governors={"powersave": [0, 1], "performance": [2, 3]}, turbo="on",
                       cpu_model="\x1b]0;pwned\x07Xeon", load=None)
    text = cli(tmp_path, "show", str(log)).stdout
    vm = next(line for line in text.splitlines() if line.startswith("  vm: "))
    assert "\x1b" not in text and "\\x1b]0;pwned\\x07Xeon" in vm  # a machine's text is escaped like any other
    assert "1 socket x 1 core x 1 thread" in vm and "turbo on" in vm
    assert "governors performance on CPUs 2-3, powersave on CPUs 0-1 (1000-3900 MHz)" in vm
    assert "load ? -> 1.50/0.80/0.40" in vm
    assert "config: /home/perf/bench.py sha256 0123abcd... git (no commit yet) (clean)" in text


def test_show_json_has_machines_and_config(tmp_path: Path) -> None:
    log = recorded_log(tmp_path / "a.jsonl")
    data = json.loads(cli(tmp_path, "show", str(log), "--format", "json").stdout)
    assert {"run", "measures", "benchmarks", "commands"} <= set(data)  # as before, keys only added
    vm, n1 = data["machines"]
    assert vm == {"label": "vm", "runners": ["local", "srv"], "boot_id": "b00t", "machine_id": "m4ch1ne",
                  "environment": machine_environment(), "load_end": [1.5, 0.8, 0.4],
                  "probes": {"gcc": {"command": "gcc --version", "returncode": 0, "output": GCC_A,
                                     "truncated": False, "error": None}},
                  "noise": [NOISE]}
    assert n1["label"] == "n1" and n1["load_end"] is None and n1["noise"] == []
    assert n1["probes"]["gcc"]["error"] == "sh: gcc: not found"
    assert data["config"] == {"path": "/home/perf/bench.py", "sha256": SHA_A,
                              "git": {"commit": COMMIT_A, "dirty": True, "root": "/home/perf"}}


def test_show_of_a_run_that_recorded_no_machine_prints_no_block(tmp_path: Path) -> None:
    log = tmp_path / "old.jsonl"
    write_benchmark_log(log, benchmarks())
    done = cli(tmp_path, "show", str(log))
    assert "machines" not in done.stdout and "config:" not in done.stdout and done.stderr == ""
    data = json.loads(cli(tmp_path, "show", str(log), "--format", "json").stdout)
    assert data["machines"] == [] and data["config"] == {"path": "/home/perf/bench.py", "sha256": None, "git": None}


def test_machine_records_that_do_not_fit_are_skipped_and_named(tmp_path: Path) -> None:
    log = recorded_log(tmp_path / "a.jsonl")
    lines = []
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if record["event"] == "machine" and record["label"] == "n1":
            record["environment"]["sockets"] = "two"
        if record["event"] == "machine" and record["label"] == "vm":
            record["environment"]["gpus"] = [{"model": "A100"}]  # a field the views do not know: left alone
            record["also"] = {"new": 1}
        if record["event"] == "probe" and record["machine"] == "n1":
            record["returncode"] = "0"
        if record["event"] == "machine_load" and record["label"] == "vm":
            record["load"] = [1.0, "high", 2.0]
        lines.append(json.dumps(record))
    lines.insert(3, json.dumps({"event": "noise", "time": 1_709_287_000.5, "machine": "vm", "check": "load",
                                "message": 5}))
    lines.insert(3, json.dumps({"event": "machine", "time": 1_709_287_000.5, "label": "x", "runners": [],
                                "boot_id": None, "machine_id": None, "environment": "fast"}))
    log.write_text("\n".join(lines) + "\n")
    done = cli(tmp_path, "show", str(log))
    assert "5 records skipped that do not fit a run log" in done.stderr
    assert "(machine whose environment.sockets is text), line 4 (machine whose environment is text), line 5 " \
           "(noise whose message is a number), ..." in done.stderr  # (the first three are named)
    vm = next(line for line in done.stdout.splitlines() if line.startswith("  vm: "))
    assert vm.endswith("load 0.12/0.30/0.25 (runners local, srv)")  # its machine_load was skipped
    assert "  n1: " not in done.stdout and "    probe gcc: could not run" not in done.stdout
    data = json.loads(cli(tmp_path, "show", str(log), "--format", "json").stdout)
    assert [m["label"] for m in data["machines"]] == ["vm"]
    assert data["machines"][0]["environment"]["gpus"] == [{"model": "A100"}]


# -- compare ------------------------------------------------------------------------------------------------


def differences_text(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("Differences between the runs:")
    return lines[start + 1:lines.index("", start)]


def test_compare_lists_every_difference_in_machines_probes_and_config(tmp_path: Path) -> None:
    a = recorded_log(tmp_path / "a.jsonl")
    b = recorded_log(tmp_path / "b.jsonl", run_id="20240302-101500-bbbbbb", gcc=GCC_B, sha=SHA_B, commit=COMMIT_B,
                     dirty=False, load_end=[9.0, 9.0, 9.0], load=[5.0, 5.0, 5.0],
                     governors={"powersave": list(range(80))}, node="n2")
    text = cli(tmp_path, "compare", str(a), str(b)).stdout
    assert text.index("Differences between the runs:") < text.index("KEY ")  # before the rows
    found = differences_text(text)
    assert found == [
        "  machine vm: governors performance on CPUs 0-79 -> powersave on CPUs 0-79",
        "  machine n1: only in A",
        "  machine n2: only in B",
        "  probe gcc on vm: output line 1: 'gcc (Debian 12.2.0-14) 12.2.0' -> 'gcc (Debian 13.1.0-1) 13.1.0'",
        "  config: sha256 0123abcd... -> 9876fedc...",
        "  config: git commit 1a2b3c4 -> 5e6f7a8",
        "  config: dirty yes -> no"]
    assert not any("load" in line for line in found)  # the load always differs: never listed
    result = json.loads(cli(tmp_path, "compare", str(a), str(b), "--format", "json").stdout)
    assert {"verdicts", "commands", "geometric_mean"} <= set(result)  # as before, keys only added
    differences = result["differences"]
    assert {"what": "probe", "machine": "vm", "probe": "gcc", "field": "output",
            "a": "gcc (Debian 12.2.0-14) 12.2.0", "b": "gcc (Debian 13.1.0-1) 13.1.0", "line": 1} in differences
    assert {"what": "config", "machine": None, "probe": None, "field": "sha256", "a": SHA_A, "b": SHA_B} \
        in differences
    assert {"what": "machine", "machine": "vm", "probe": None, "field": "governors",
            "a": {"performance": list(range(80))}, "b": {"powersave": list(range(80))}} in differences
    assert {"what": "machine", "machine": "n2", "probe": None, "field": "present", "a": False, "b": True} \
        in differences
    assert len(differences) == 7  # (the probes of a machine in one run only: that machine's line says it)
    rows = cli(tmp_path, "compare", str(a), str(b), "--format", "csv").stdout.splitlines()
    assert rows[0].startswith("key,name,kind") and len(rows) == 3  # CSV: the rows only, as before


def test_compare_says_when_machines_probes_and_config_are_the_same(tmp_path: Path) -> None:
    a = recorded_log(tmp_path / "a.jsonl")
    b = recorded_log(tmp_path / "b.jsonl", run_id="20240302-101500-bbbbbb", load_end=[3.0, 2.0, 1.0],
                     load=[7.0, 7.0, 7.0])
    text = cli(tmp_path, "compare", str(a), str(b)).stdout
    assert "No difference in machines, probes or config." in text
    assert json.loads(cli(tmp_path, "compare", str(a), str(b), "--format", "json").stdout)["differences"] == []


def test_compare_of_runs_that_recorded_nothing_says_nothing_about_machines(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_benchmark_log(a, benchmarks(), run_id="20240301-101500-aaaaaa")
    write_benchmark_log(b, benchmarks(), run_id="20240302-101500-bbbbbb")
    text = cli(tmp_path, "compare", str(a), str(b)).stdout
    assert "Differences" not in text and "No difference" not in text
    assert json.loads(cli(tmp_path, "compare", str(a), str(b), "--format", "json").stdout)["differences"] is None
    # one run that recorded them against one that did not: all it recorded is a difference
    recorded_log(b, run_id="20240302-101500-bbbbbb")
    found = differences_text(cli(tmp_path, "compare", str(a), str(b)).stdout)
    assert found[:2] == ["  machine vm: only in B", "  machine n1: only in B"]
    assert "  config: sha256 unknown -> 0123abcd..." in found


def test_a_memory_limit_of_a_big_machine_is_no_number_out_of_range(tmp_path: Path) -> None:
    """memory="256G" (bytes beyond the 1e11 that bounds times and counts) on a command of a big node: its
    records are read, not skipped as out of range (the command would be shown running for ever)."""
    log = tmp_path / "big.jsonl"
    write_benchmark_log(log, benchmarks())
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    for record in lines:
        if record["event"] == "finished":
            record["memory_limit"] = 256 << 30
    log.write_text("".join(json.dumps(record) + "\n" for record in lines))
    done = cli(tmp_path, "show", str(log), "--format", "json", "--repetitions")
    assert done.stderr == ""
    rows = json.loads(done.stdout)["commands"]
    assert {(row["status"], row["memory_limit"]) for row in rows} == {("ok", 256 << 30)}


# -- real runs ------------------------------------------------------------------------------------------------


def test_compare_of_two_real_runs_lists_the_probe_output_and_config_that_changed(tmp_path: Path) -> None:
    """Issue 21's acceptance, end to end: two runs of a config in git, between which a probe's output and the
    config changed (and the work tree became dirty)."""
    import shutil
    import subprocess

    from parallux._goal import Goal
    if not hasattr(Goal, "probe") or shutil.which("git") is None:
        pytest.skip("needs goal.probe() (the capture side of issue 21) and git")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    version = tmp_path / "tool-version.txt"
    version.write_text("tool 1.0\n")
    config = tmp_path / "config.py"
    config.write_text(f"from parallux import goal\ngoal.local(workspace='ws', max_jobs=1)\n"
                      f"goal.probe('tool', 'cat {version}; echo second line')\n"
                      f"goal.schd('true', name='t', work_relpath='t', repeat=3)\n")
    (tmp_path / ".gitignore").write_text("ws/\n.local/\n*.jsonl\n__pycache__/\n")
    git("init", "-q", ".")
    git("add", ".")
    git("commit", "-qm", "one")
    assert cli(tmp_path, "config.py", "-q", "--log", "a.jsonl").returncode == 0
    version.write_text("tool 2.0\n")
    config.write_text(config.read_text() + "# changed\n")
    assert cli(tmp_path, "config.py", "-q", "--log", "b.jsonl").returncode == 0
    data = json.loads(cli(tmp_path, "show", "a.jsonl", "--format", "json").stdout)
    (machine,) = data["machines"]
    assert machine["label"] == data["run"]["runners"][0]["machine"] and machine["runners"] == ["local"]
    assert machine["environment"]["logical_cpus"] >= 1 and machine["load_end"] is not None
    assert machine["probes"]["tool"]["output"] == "tool 1.0\nsecond line\n"
    assert data["config"]["git"] == {"commit": git("rev-parse", "HEAD"), "dirty": False, "root": str(tmp_path)}
    found = differences_text(cli(tmp_path, "compare", "a.jsonl", "b.jsonl").stdout)
    label = machine["label"]
    assert f"  probe tool on {label}: output line 1: 'tool 1.0' -> 'tool 2.0'" in found
    assert any(line.startswith("  config: sha256 ") for line in found) and "  config: dirty no -> yes" in found
    assert len(found) == 3, found  # the same machine, the same commit: nothing else differs
