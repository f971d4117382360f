"""Looking at runs through the real CLI: the history per config, runs, show, export, compare, the report file.

Every figure a view prints is checked against the run log the run wrote, which the views read back.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from parallux._views.reader import load_run
from tests.helpers import REPO, cli_env, run_cli, start_cli, wait_until, write_config

CAMPAIGN = """
    from parallux import goal
    local = goal.local(workspace="ws", max_jobs=3)
    pinned = goal.local(name="pinned", workspace="ws", core_pool=[0, 1])
    goal.setRunner([local, pinned])
    for i in range(10):
        goal.schd(f"sleep 0.0{i}; exit {int(i == 4)}", name=f"c{i}", check=False, work_relpath=f"c/{i}",
                  runner="local")
    goal.schd("echo flaky >&2; exit 3", name="flaky", check=False, retries=1, work_relpath="flaky",
              runner="local")
    for i in range(3):
        goal.schd("true", name=f"p{i}", runner="pinned", work_relpath=f"p/{i}")
"""


def runs_dir(home: Path) -> Path:
    return home / ".local" / "state" / "parallux" / "runs"


def log_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def log_path_of(stderr: str) -> Path:
    line = next(line for line in stderr.splitlines() if "run log: " in line)
    return Path(line.split("run log: ", 1)[1].split(" (")[0].strip())


def run_campaign(tmp_path: Path, source: str = CAMPAIGN, *args: str) -> Path:
    write_config(tmp_path, source, name=args[0] if args and args[0].endswith(".py") else "config.py")
    done = run_cli(tmp_path, *(args or ("config.py",)))
    assert done.returncode == 0, done.stderr
    return log_path_of(done.stderr)


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = run_cli(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One finished run of CAMPAIGN (several tests read it): its directory and its log."""
    home = tmp_path_factory.mktemp("campaign")
    return home, run_campaign(home)


# -- the history -------------------------------------------------------------------------------------------


def test_history_keeps_runs_per_config_and_latest_only_for_runs_that_started_commands(tmp_path: Path) -> None:
    log = run_campaign(tmp_path)
    write_config(tmp_path, "from parallux import goal\nraise ValueError('bad config')\n", name="broken.py")
    broken = run_cli(tmp_path, "broken.py")
    assert broken.returncode != 0
    broken_log = log_path_of(broken.stderr)
    assert broken_log.parent != log.parent and broken_log.parent.parent == runs_dir(tmp_path)
    assert (runs_dir(tmp_path) / "latest.jsonl").resolve() == log.resolve()  # the config error is not latest
    assert not (broken_log.parent / "latest.jsonl").exists()

    listed = cli(tmp_path, "runs", "--format", "json")
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [log.stem]
    every = json.loads(cli(tmp_path, "runs", "--all", "--format", "json").stdout)
    assert [r["run_id"] for r in every] == [broken_log.stem, log.stem]  # newest first
    assert every[0]["started_commands"] is False and every[0]["exit_status"] == 1
    assert every[1]["config"] == str(tmp_path / "config.py") and every[1]["counts"] == {"ok": 12, "failed": 2}
    only = json.loads(cli(tmp_path, "runs", "--all", "--config", "broken.py", "--format", "json").stdout)
    assert [r["run_id"] for r in only] == [broken_log.stem]
    table = cli(tmp_path, "runs").stdout
    assert log.stem in table and broken_log.stem not in table and "config.py" in table
    # show's default is the latest run that started commands, of one config with --config
    assert f"run      {log.stem}" in cli(tmp_path, "show").stdout
    assert run_cli(tmp_path, "show", "--config", "broken.py").returncode == 2


def test_history_finds_a_run_logged_elsewhere_with_log(tmp_path: Path) -> None:
    write_config(tmp_path, "from parallux import goal\ngoal.local(workspace='ws')\ngoal.schd('true')\n")
    elsewhere = tmp_path / "logs" / "mine.jsonl"
    done = run_cli(tmp_path, "config.py", "--log", str(elsewhere))
    assert done.returncode == 0, done.stderr
    run_id = log_events(elsewhere)[0]["run_id"]
    assert json.loads(cli(tmp_path, "runs", "--format", "json").stdout)[0]["run_id"] == run_id
    for spec in (run_id, run_id[:17], str(elsewhere)):
        assert json.loads(cli(tmp_path, "show", spec, "--format", "json").stdout)["run"]["run_id"] == run_id


def test_history_bad_run_specs_are_usage_errors(tmp_path: Path, campaign: tuple[Path, Path]) -> None:
    home, log = campaign
    missing = run_cli(home, "show", "nosuchrun")
    assert missing.returncode == 2 and "no run 'nosuchrun'" in missing.stderr and "Traceback" not in missing.stderr
    assert run_cli(home, "show", "missing/run.jsonl").returncode == 2
    not_a_log = home / "notes.txt"
    not_a_log.write_text("hello\n")
    assert run_cli(home, "show", str(not_a_log)).returncode == 2
    assert run_cli(home, "show", "--format", "yaml").returncode == 2
    assert run_cli(home, "export", log.stem).returncode == 2  # one of --trace/--junit/--csv is required
    nothing = run_cli(tmp_path, "show")
    assert nothing.returncode == 2 and "no run" in nothing.stderr


def test_history_a_config_named_like_a_subcommand_runs_as_a_path(tmp_path: Path) -> None:
    write_config(tmp_path, "from parallux import goal\nprint('config ran')\n", name="runs")
    assert "config ran" in cli(tmp_path, "./runs").stdout
    assert "config ran" not in cli(tmp_path, "runs").stdout  # the word first is the subcommand


def test_history_summary_names_the_report_command(tmp_path: Path) -> None:
    write_config(tmp_path, "from parallux import goal\ngoal.local(workspace='ws')\ngoal.schd('true')\n")
    done = cli(tmp_path, "config.py")
    run_id = log_path_of(done.stderr).stem
    assert f"  report: parallux report {run_id} -o report.html" in done.stderr


# -- show -------------------------------------------------------------------------------------------------


def finished_events(log: Path) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in log_events(log) if e["event"] == "finished"}


def test_show_rows_match_the_run_log_in_every_format(campaign: tuple[Path, Path]) -> None:
    home, log = campaign
    events = log_events(log)
    finished = finished_events(log)
    ended = {}  # attempts per command: each that ended has a retrying or finished record (a started one only
    for event in events:  # if it was still running at a flush of the log)
        if event["event"] in ("retrying", "finished"):
            ended[event["name"]] = ended.get(event["name"], 0) + 1
    shown = json.loads(cli(home, "show", log.stem, "--format", "json").stdout)
    assert shown["run"]["run_id"] == log.stem and shown["run"]["counts"] == {"ok": 12, "failed": 2}
    assert shown["run"]["exit_status"] == 0 and shown["run"]["state"] == "finished"
    assert {r["name"] for r in shown["run"]["runners"]} == {"local", "pinned"}
    assert [r for r in shown["run"]["runners"] if r["name"] == "pinned"][0]["core_pool"] == [0, 1]
    rows = {row["name"]: row for row in shown["commands"]}
    assert len(rows) == len(finished) == 14
    for name, event in finished.items():
        row = rows[name]
        for key in ("runner", "host", "cores", "status", "returncode", "start", "end", "max_rss_kb", "work_dir"):
            assert row[key] == event[key], (name, key)
        assert row["duration"] == pytest.approx(event["duration"], abs=1e-6)
        assert row["cpu_seconds"] == pytest.approx(event["user_seconds"] + event["system_seconds"], abs=1e-6)
        assert row["attempts"] == ended[name]
    assert rows["flaky"]["attempts"] == 2 and rows["flaky"]["returncode"] == 3
    assert all(rows[f"p{i}"]["cores"] and set(rows[f"p{i}"]["cores"]) <= {0, 1} for i in range(3))
    assert rows["c0"]["host"] == os.uname()[1]

    for fmt, delimiter in (("csv", ","), ("tsv", "\t")):
        text = cli(home, "show", log.stem, "--format", fmt).stdout
        table = list(csv.DictReader(io.StringIO(text), delimiter=delimiter))
        assert [r["name"] for r in table] == [r["name"] for r in shown["commands"]]
        for record in table:
            row = rows[record["name"]]
            assert record["status"] == row["status"] and record["returncode"] == str(row["returncode"])
            assert record["cores"] == ",".join(map(str, row["cores"]))
            assert float(record["duration"]) == pytest.approx(row["duration"])
            assert record["work_dir"] == row["work_dir"] and int(record["attempts"]) == row["attempts"]

    text = cli(home, "show", log.stem).stdout
    summary, machines, body = text.split("\n\n", 2)  # (a real run's log records its machine: the Machines block)
    assert f"run      {log.stem} (finished, exit status 0)" in summary
    assert "commands 14: 2 failed, 12 ok; 1 retries" in summary and "pinned (" in summary
    assert machines.startswith("machines\n") and "config: " in machines
    lines = body.splitlines()
    assert lines[0].split()[:4] == ["NAME", "RUNNER", "HOST", "CORES"] and len(lines) == 15
    flaky = next(line for line in lines if line.startswith("flaky "))
    assert " failed " in flaky and " 3 " in flaky and str(home / "ws" / "flaky") in flaky


def test_show_failed_and_slowest(campaign: tuple[Path, Path]) -> None:
    home, log = campaign
    failed = json.loads(cli(home, "show", "--failed", "--format", "json").stdout)["commands"]
    assert sorted(r["name"] for r in failed) == ["c4", "flaky"]
    slowest = json.loads(cli(home, "show", "--slowest", "3", "--format", "json").stdout)["commands"]
    durations = sorted((e["duration"] for e in finished_events(log).values()), reverse=True)
    assert [r["duration"] for r in slowest] == pytest.approx(durations[:3], abs=1e-6)
    one = json.loads(cli(home, "show", "--failed", "--slowest", "1", "--format", "json").stdout)["commands"]
    assert len(one) == 1 and one[0]["name"] in ("c4", "flaky")


def test_show_works_while_the_run_is_going(tmp_path: Path) -> None:
    release = tmp_path / "release"
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws", max_jobs=2)
        goal.schd("true", name="quick")
        goal.schd("while [ ! -e {release} ]; do sleep 0.05; done", name="waiting")
        goal.schd("true", name="after", runner="local")
        goal.schd("sleep 0.01; while [ ! -e {release} ]; do sleep 0.05; done", name="queued_behind")
        goal.schd("true", name="last")
    """)
    process = start_cli(tmp_path, "config.py", "-q")
    try:
        def shown() -> dict[str, Any] | None:
            done = run_cli(tmp_path, "show", "--format", "json")
            return json.loads(done.stdout) if done.returncode == 0 else None

        assert wait_until(lambda: (s := shown()) is not None and
                          {r["name"]: r["status"] for r in s["commands"]}.get("waiting") == "running", timeout=20)
        now = shown()
        assert now is not None and now["run"]["state"] == "running" and now["run"]["exit_status"] is None
        statuses = {r["name"]: r["status"] for r in now["commands"]}
        assert statuses["quick"] == "ok" and statuses["waiting"] == "running"
        running = [r for r in now["commands"] if r["status"] == "running"]
        assert all(r["start"] is not None and r["runner"] == "local" for r in running)
        table = run_cli(tmp_path, "show")
        assert table.returncode == 0 and "running" in table.stdout
    finally:
        release.touch()
        process.communicate(timeout=30)
    assert process.returncode == 0
    after = json.loads(cli(tmp_path, "show", "--format", "json").stdout)
    assert after["run"]["state"] == "finished" and after["run"]["counts"] == {"ok": 5}


def test_show_tolerates_a_half_written_last_line(campaign: tuple[Path, Path], tmp_path: Path) -> None:
    _, log = campaign
    lines = log.read_text().splitlines(keepends=True)
    torn = tmp_path / "torn.jsonl"
    # cut in the middle of the third finished event: as a reader may see a log being flushed
    cut = [i for i, line in enumerate(lines) if '"event":"finished"' in line][2]
    torn.write_text("".join(lines[:cut]) + lines[cut][: len(lines[cut]) // 2])
    shown = json.loads(cli(tmp_path, "show", str(torn), "--format", "json").stdout)
    statuses = [r["status"] for r in shown["commands"]]
    assert statuses.count("ok") + statuses.count("failed") == 2 and shown["run"]["state"] == "killed"


# -- export ------------------------------------------------------------------------------------------------


def test_export_trace_is_one_complete_event_per_attempt_on_non_overlapping_slots(campaign: tuple[Path, Path]) -> None:
    home, log = campaign
    target = home / "trace.json"
    cli(home, "export", log.stem, "--trace", str(target))
    trace = json.loads(target.read_text())
    events = trace["traceEvents"]
    attempts = [e for e in log_events(log) if e["event"] in ("retrying", "finished")]  # (one record per attempt)
    complete = [e for e in events if e["ph"] == "X"]
    assert len(complete) == len(attempts) == 15
    processes = {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    by_lane: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for event in complete:
        assert processes[event["pid"]].startswith(f"runner {event['args']['runner']}")
        assert (event["pid"], event["tid"]) in threads
        assert {"status", "returncode", "work_dir", "cores", "command", "attempt"} <= set(event["args"])
        by_lane.setdefault((event["pid"], event["tid"]), []).append((event["ts"], event["ts"] + event["dur"]))
    for intervals in by_lane.values():
        intervals.sort()
        assert all(a[1] <= b[0] + 1 for a, b in zip(intervals, intervals[1:]))  # 1 µs of rounding
    pinned = [e for e in complete if e["args"]["runner"] == "pinned"]
    assert {threads[(e["pid"], e["tid"])] for e in pinned} <= {"core 0", "core 1"}
    counters = {e["name"] for e in events if e["ph"] == "C"}
    assert counters == {"running", "queued"}
    assert max(e["args"].get("running", 0) for e in events if e["ph"] == "C" and e["name"] == "running") <= 3
    assert trace["otherData"]["run_id"] == log.stem


def test_export_junit_has_one_testcase_per_command_with_the_failures_stderr(campaign: tuple[Path, Path]) -> None:
    home, log = campaign
    target = home / "junit.xml"
    cli(home, "export", log.stem, "--junit", str(target))
    suite = ET.parse(target).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == 14 and suite.get("tests") == "14" and suite.get("failures") == "2"
    failures = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert set(failures) == {"c4", "flaky"}
    flaky = failures["flaky"]
    assert flaky is not None and "exited with status 3" in (flaky.get("message") or "") and "flaky" in (flaky.text or "")


def test_export_csv_and_stdout(campaign: tuple[Path, Path]) -> None:
    home, log = campaign
    target = home / "rows.csv"
    cli(home, "export", log.stem, "--csv", str(target))
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 14 and {r["name"] for r in rows} == set(finished_events(log))
    assert cli(home, "export", log.stem, "--csv", "-").stdout == target.read_text()


# -- compare ------------------------------------------------------------------------------------------------


def test_compare_two_runs_of_a_config_with_one_changed_command(tmp_path: Path) -> None:
    source = """
        from parallux import goal
        goal.local(workspace="ws", max_jobs=4)
        slow = goal.args.get("slow") == "yes"
        for i in range(4):
            goal.schd(f"sleep {0.4 if slow and i == 1 else 0.1}", name=f"t{i}", work_relpath=f"t/{i}")
        goal.schd("exit 1" if slow else "true", name="breaks", work_relpath="breaks", check=False)
    """
    write_config(tmp_path, source)
    first = log_path_of(cli(tmp_path, "config.py").stderr).stem
    second = log_path_of(cli(tmp_path, "config.py", "--", "slow=yes").stderr).stem
    result = json.loads(cli(tmp_path, "compare", first, second, "--format", "json").stdout)
    assert result["matched"] == 5 and result["only_a"] == result["only_b"] == []
    assert [(c["key"], c["status_a"], c["status_b"]) for c in result["status_changes"]] == \
        [("breaks", "ok", "failed")]
    ratios = {c["key"]: c["ratio"] for c in result["commands"]}
    # plain commands: one execution each, too few for a verdict, but their ratio is there
    assert {c["verdict"] for c in result["commands"]} == {"too few"} and result["verdicts"]["too few"] == 5
    assert ratios["t/1"] > 2.5 and all(0.5 < ratios[f"t/{i}"] < 2 for i in (0, 2, 3)) and ratios["breaks"] is None
    product = 1.0
    for i in range(4):
        product *= ratios[f"t/{i}"]
    assert result["geometric_mean"] == pytest.approx(product ** 0.25, rel=1e-3)
    assert result["commands"][0]["key"] == "t/1"  # the biggest slowdown first
    text = cli(tmp_path, "compare", first, second).stdout
    assert "breaks: ok -> failed" in text and "geometric mean" in text
    rows = list(csv.DictReader(io.StringIO(cli(tmp_path, "compare", first, second, "--format", "csv").stdout)))
    assert len(rows) == 5 and {r["key"] for r in rows} == set(ratios)


# -- the report file ---------------------------------------------------------------------------------------


def embedded_data(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="parallux-data">(.*?)</script>', html, re.DOTALL)
    assert match is not None
    return json.loads(match.group(1))


def test_report_is_one_file_with_the_runs_records_and_nothing_to_fetch(campaign: tuple[Path, Path]) -> None:
    home, log = campaign
    target = home / "report.html"
    done = cli(home, "report", log.stem, "-o", str(target))
    assert str(target) in done.stderr
    html = target.read_text()
    assert not re.search(r'<(script|link|img|iframe)[^>]+(src|href)=', html)  # everything inline
    assert "@import" not in html and "fetch(" not in re.sub(r"/\*.*?\*/", "", html, flags=re.DOTALL)
    data = embedded_data(html)
    assert data["format"] == "parallux-report" and data["run"]["run_id"] == log.stem
    commands = [dict(zip(data["commands"]["fields"], row)) for row in data["commands"]["rows"]]
    attempts = [dict(zip(data["attempts"]["fields"], row)) for row in data["attempts"]["rows"]]
    assert len(commands) == 14 and len(attempts) == 15
    finished = finished_events(log)
    for command in commands:
        assert command["status"] == finished[command["name"]]["status"]
    origin = data["origin"]
    for attempt in attempts:
        assert attempt["end_us"] >= attempt["start_us"] >= 0
        assert origin + attempt["start_us"] / 1e6 == pytest.approx(
            next(e["start"] for e in log_events(log) if e["event"] in ("finished", "retrying")
                 and e["seq"] == attempt["seq"] and e["attempt"] == attempt["attempt"]), abs=1e-5)
    flaky = [f for f in data["failures"] if commands[[c["seq"] for c in commands].index(f["seq"])]["name"] == "flaky"]
    assert flaky and "flaky" in flaky[0]["stderr_tail"]


def test_report_default_output_is_named_after_the_run(campaign: tuple[Path, Path], tmp_path: Path) -> None:
    home, log = campaign
    done = run_cli(tmp_path, "report", str(log))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / f"{log.stem}.html").exists()


# -- a run log that cannot be written ----------------------------------------------------------------------


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Any:
    """A 64 KiB tmpfs mounted for the test (needs root, as the test machines have); skipped elsewhere."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_run_log_on_a_full_filesystem_costs_the_run_nothing_but_the_log(tmp_path: Path,
                                                                       small_filesystem: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws", max_jobs=8)
        for i in range(200):
            goal.schd("true", name=f"command_with_a_long_name_{i:04d}")
    """)
    log = small_filesystem / "run.jsonl"
    done = run_cli(tmp_path, "config.py", "--log", str(log))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("cannot write the run log") == 1
    assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
    assert "parallux: 200 commands (200 ok)" in done.stderr  # the summary is still printed
    assert f"run log: {log} (incomplete: No space left on device)" in done.stderr
    assert "report: parallux report" not in done.stderr



def test_load_run_reads_the_same_with_or_without_orjson(campaign: tuple[Path, Path], tmp_path: Path) -> None:
    from parallux._views import jsonl as _jsonl
    _, log = campaign
    odd = tmp_path / "odd.jsonl"
    # a command line holding a lone surrogate (from an undecodable file name): orjson refuses it, json not
    lines = log.read_text().splitlines(keepends=True)
    queued = next(i for i, line in enumerate(lines) if '"event":"queued"' in line)
    record = json.loads(lines[queued])
    record["command"] = "cat trace-\udcff.gz"
    lines[queued] = json.dumps(record) + "\n"
    odd.write_text("".join(lines) + '{"event":"finished","seq"')  # and a torn last line
    fast = load_run(str(odd))
    with _jsonl.without_orjson():
        plain = load_run(str(odd))
    assert [(c.name, c.status, c.command, c.duration, len(c.attempts)) for c in fast.commands] == \
        [(c.name, c.status, c.command, c.duration, len(c.attempts)) for c in plain.commands]
    assert fast.commands[0].command == "cat trace-\udcff.gz" and fast.skipped_lines == plain.skipped_lines == 1
    report = tmp_path / "odd.html"
    cli(tmp_path, "report", str(odd), "-o", str(report))
    from parallux._views.report import COMMAND_FIELDS
    row = embedded_data(report.read_text())["commands"]["rows"][0]
    assert row[COMMAND_FIELDS.index("command")] == "cat trace-\udcff.gz"
    shown = subprocess.run([sys.executable, "-m", "parallux", "show", str(odd), "--format", "csv"], cwd=tmp_path,
                           capture_output=True, env=cli_env(tmp_path))
    assert shown.returncode == 0 and b"cat trace-\xff.gz" in shown.stdout  # the file name's own bytes


# -- what the views import ---------------------------------------------------------------------------------


def imported_modules(path: Path) -> set[str]:
    """Every module an import in ``path`` names: at the top, inside functions and under TYPE_CHECKING."""
    package = list(path.relative_to(REPO).with_suffix("").parts[:-1])  # a package's __init__ is in itself
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            names.add(".".join(base + ([node.module] if node.module else [])))
    return names


def test_views_import_of_the_rest_of_parallux_only_leaves() -> None:
    """`parallux show` needs no runner and must start fast: the views import neither the CLI, nor the session,
    engine or runners, nor anything that imports Trio; outside their package, only modules that import
    nothing of parallux."""
    outside = {name for path in (REPO / "parallux" / "_views").rglob("*.py") for name in imported_modules(path)
               if name.startswith("parallux") and not name.startswith("parallux._views")}
    assert outside, "the views import no leaf at all: this test no longer looks at the right files"
    for name in sorted(outside):
        leaf = REPO / (name.replace(".", "/") + ".py")
        imports = imported_modules(leaf)
        assert not {i for i in imports if i.startswith(("parallux", "trio", "asyncssh", "rich"))}, \
            f"the views import {name}, which is no leaf: it imports {sorted(imports)}"
    code = ("import sys, parallux._cli, parallux._views.subcommands, parallux._views.export, parallux._views.report;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('trio', 'asyncssh', 'rich')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"



# -- show --slowest/--failed of a big run: two passes over its log, never the whole run as objects ----------

def _show_json(log: Path, *options: str) -> dict[str, Any]:
    from parallux._views import subcommands
    out = io.StringIO()
    stdout, sys.stdout = sys.stdout, out
    try:
        assert subcommands.main(["show", str(log), "--format", "json", *options]) == 0
    finally:
        sys.stdout = stdout
    return json.loads(out.getvalue())


def _shown_by_the_whole_run(log: Path, failed: bool, slowest: int | None) -> dict[str, Any]:
    """What show printed when it read every command (``load_run``), rows and summary."""
    from parallux._views.show import command_row, select
    run = load_run(str(log))
    return {"run": run.summary(), "commands": [command_row(run, c) for c in select(run.commands, failed, slowest)]}


@pytest.fixture(scope="module")
def synthetic_logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished campaign of 3,000 commands (failures, retries, four runners, a core pool); the same cut
    where it was still going (commands queued, running, retried and running again); and with records that
    do not fit."""
    from tests.synthetic import write_synthetic_log
    where = tmp_path_factory.mktemp("synthetic")
    finished = where / "finished.jsonl"
    write_synthetic_log(finished, 3000, seed=7)
    lines = finished.read_bytes().split(b"\n")
    going = where / "going.jsonl"
    going.write_bytes(b"\n".join(lines[:len(lines) * 3 // 5]) + b'\n{"event":"finished","ti')
    broken = where / "broken.jsonl"
    broken.write_bytes(b"\n".join(line.replace(b'"returncode":1,', b'"returncode":true,', 1) if i % 500 == 7
                                  else b"[]" if i % 777 == 5 else line for i, line in enumerate(lines)))
    return {"finished": finished, "going": going, "broken": broken}


@pytest.mark.parametrize("log", ["finished", "going", "broken"])
@pytest.mark.parametrize("failed,slowest", [(False, 9), (True, None), (True, 4)])
def test_show_selected_in_two_passes_is_what_reading_the_whole_run_gave(
        synthetic_logs: dict[str, Path], log: str, failed: bool, slowest: int | None,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = synthetic_logs[log]
    options = (["--failed"] if failed else []) + (["--slowest", str(slowest)] if slowest else [])
    shown = _show_json(path, *options)
    expected = _shown_by_the_whole_run(path, failed, slowest)
    if expected["run"]["state"] == "running":  # (a run still going: its end is now)
        for summary in (shown["run"], expected["run"]):
            summary.pop("end"), summary.pop("elapsed")
    assert shown["run"] == expected["run"] and shown["commands"] == expected["commands"]
    assert len(shown["commands"]) > 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "do not fit a run log" in line]
    assert len(warned) == (log == "broken")


def test_show_slowest_keeps_a_few_numbers_per_command_not_the_run(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The log read a block at a time (a small block here, as a big run's log is many blocks) into columns:
    what a command more costs at the peak is some tens of bytes (reading the whole run: kilobytes)."""
    import tracemalloc
    from parallux._views import logfile
    from tests.synthetic import write_synthetic_log
    monkeypatch.setattr(logfile, "BLOCK", 1 << 18, raising=False)
    peaks = []
    for commands in (2000, 6000):
        log = tmp_path / f"{commands}.jsonl"
        write_synthetic_log(log, commands, seed=3)
        _show_json(log, "--slowest", "3")  # (imports done, caches warm)
        tracemalloc.start()
        try:
            assert len(_show_json(log, "--slowest", "3")["commands"]) == 3
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert (peaks[1] - peaks[0]) / 4000 < 150, f"{(peaks[1] - peaks[0]) / 4000:.0f} bytes a command more"
