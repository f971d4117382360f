"""A run log holds one run, and every view survives whatever a log holds (SPEC section 20), through the real CLI.

Two runs given one ``--log FILE`` each keep their own log; a torn last line never swallows the next record;
a record that does not fit (a list as ``seq``, text as a time, a field missing...) is skipped with one
warning naming its file and line, never a traceback; one bad log never hides the others in ``parallux runs``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import run_cli, write_config

CONFIG = """
    from parallux import goal
    local = goal.local(workspace="ws", max_jobs=2)
    pinned = goal.local(name="pinned", workspace="ws", core_pool=[0, 1])
    goal.setRunner([local, pinned])
    n = int(goal.args.get("n", "2"))
    for i in range(n):
        goal.schd(f"echo {i}", name=f"c{i}", work_relpath=f"c/{i}", runner="local")
    goal.schd("echo flaky >&2; exit 3", name="flaky", check=False, retries=1, work_relpath="flaky",
              runner="local")
    goal.schd("true", name="p0", runner="pinned", work_relpath="p/0")
"""


def runs_dir(home: Path) -> Path:
    return home / ".local" / "state" / "parallux" / "runs"


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def log_path_of(stderr: str) -> Path:
    line = next(line for line in stderr.splitlines() if "run log: " in line)
    return Path(line.split("run log: ", 1)[1].split(" (")[0].strip())


def cli(cwd: Path, *args: str) -> Any:
    done = run_cli(cwd, *args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done


def shown(cwd: Path, spec: str) -> dict[str, Any]:
    return json.loads(cli(cwd, "show", spec, "--format", "json").stdout)


def embedded_data(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="parallux-data">(.*?)</script>', html, re.DOTALL)
    assert match is not None
    return json.loads(match.group(1))


def reported(cwd: Path, spec: str) -> dict[str, Any]:
    target = cwd / "report.html"
    cli(cwd, "report", spec, "-o", str(target))
    return embedded_data(target.read_text())


# -- one run per log --------------------------------------------------------------------------------------


def test_two_runs_given_one_log_each_keep_their_own(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    log = tmp_path / "run.jsonl"
    first = cli(tmp_path, "config.py", "--log", str(log), "--", "n=2")
    assert log_path_of(first.stderr) == log
    before = log.read_bytes()
    second = cli(tmp_path, "config.py", "--log", str(log), "--", "n=3")
    assert log.read_bytes() == before  # the first run's log is left as it was
    own = log_path_of(second.stderr)
    assert own != log and own.parent == log.parent and own.exists()
    first_id, second_id = events(log)[0]["run_id"], events(own)[0]["run_id"]
    assert first_id != second_id and [e["run_id"] for e in events(own) if e["event"] == "run_started"] == [second_id]
    # said at once, naming both files
    note = next(line for line in second.stderr.splitlines() if str(log) in line and "run log" not in line)
    assert second_id in note and str(own) in note

    listed = json.loads(cli(tmp_path, "runs", "--format", "json").stdout)
    assert sorted(r["run_id"] for r in listed) == sorted([first_id, second_id])
    assert {r["run_id"]: r["counts"] for r in listed} == {first_id: {"ok": 3, "failed": 1},
                                                          second_id: {"ok": 4, "failed": 1}}
    for run_id, commands in ((first_id, 4), (second_id, 5)):
        run = shown(tmp_path, run_id)["run"]
        assert run["run_id"] == run_id and run["commands"] == commands and run["retries"] == 1
        data = reported(tmp_path, run_id)
        assert data["run"]["run_id"] == run_id and len(data["commands"]["rows"]) == commands
    # the summary's own report command reports its own run
    command = next(line for line in second.stderr.splitlines() if "report: parallux report" in line)
    assert command.split("parallux report ", 1)[1].split()[0] == second_id
    assert shown(tmp_path, str(log))["run"]["run_id"] == first_id
    assert shown(tmp_path, str(own))["run"]["run_id"] == second_id


def test_resume_with_the_same_log_resumes_into_a_log_of_its_own(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    log = tmp_path / "run.jsonl"
    cli(tmp_path, "config.py", "--log", str(log), "--", "n=2")
    again = cli(tmp_path, "--resume", "config.py", "--log", str(log), "--", "n=3")
    assert "resumed: 3 commands skipped" in again.stderr  # c0, c1, p0; flaky failed, c2 is new
    own = log_path_of(again.stderr)
    assert own != log
    run = shown(tmp_path, own.stem if False else events(own)[0]["run_id"])["run"]
    assert run["commands"] == 5 and run["resumed"] == 3


def test_an_empty_file_given_as_log_is_used(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    log = tmp_path / "run.jsonl"
    log.touch()
    done = cli(tmp_path, "config.py", "--log", str(log))
    assert log_path_of(done.stderr) == log and events(log)[0]["event"] == "run_started"


def test_a_torn_last_line_never_swallows_the_next_run(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    log = tmp_path / "run.jsonl"
    cli(tmp_path, "config.py", "--log", str(log))
    first_id = events(log)[0]["run_id"]
    data = log.read_bytes()
    log.write_bytes(data[:-40])  # killed while it wrote its last line
    torn = log.read_bytes()
    second = cli(tmp_path, "config.py", "--log", str(log), "--", "n=3")
    assert log.read_bytes() == torn
    own = log_path_of(second.stderr)
    second_id = events(own)[0]["run_id"]
    listed = {r["run_id"]: r for r in json.loads(cli(tmp_path, "runs", "--format", "json").stdout)}
    assert set(listed) == {first_id, second_id} and listed[second_id]["counts"] == {"ok": 4, "failed": 1}
    assert listed[first_id]["state"] == "killed"
    assert shown(tmp_path, first_id)["run"]["commands"] == 4
    assert shown(tmp_path, second_id)["run"]["commands"] == 5


def test_a_log_where_runs_were_appended_is_read_run_by_run(tmp_path: Path) -> None:
    """As parallux before this fix wrote them: a second run appended to the first's torn log, and both runs'
    history entries pointing at the one file."""
    write_config(tmp_path, CONFIG)
    merged, other = tmp_path / "merged.jsonl", tmp_path / "other.jsonl"
    cli(tmp_path, "config.py", "--log", str(merged), "--", "n=2")
    cli(tmp_path, "config.py", "--log", str(other), "--", "n=3")
    first_id, second_id = events(merged)[0]["run_id"], events(other)[0]["run_id"]
    merged.write_bytes(merged.read_bytes()[:-40] + other.read_bytes())
    entry = next(runs_dir(tmp_path).glob(f"*/{second_id}.jsonl"))
    other.unlink()
    entry.unlink()
    entry.symlink_to(merged)

    listed = {r["run_id"]: r for r in json.loads(cli(tmp_path, "runs", "--format", "json").stdout)}
    assert set(listed) == {first_id, second_id}
    assert listed[second_id]["counts"] == {"ok": 4, "failed": 1} and listed[second_id]["state"] == "finished"
    assert listed[first_id]["state"] == "killed" and listed[first_id]["counts"] is None
    for run_id, commands in ((first_id, 4), (second_id, 5)):
        for spec in (run_id, run_id[:18]):
            run = shown(tmp_path, spec)["run"]
            assert (run["run_id"], run["commands"], run["retries"]) == (run_id, commands, 1)
        assert reported(tmp_path, run_id)["run"]["run_id"] == run_id
    assert shown(tmp_path, "latest")["run"]["run_id"] == second_id
    # the file itself: its last run, and a word on the others
    done = cli(tmp_path, "show", str(merged), "--format", "json")
    assert json.loads(done.stdout)["run"]["run_id"] == second_id and first_id in done.stderr


# -- records that do not fit ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The log of one real run of CONFIG: a failure, a retry, a runner with a core pool."""
    home = tmp_path_factory.mktemp("real")
    write_config(home, CONFIG)
    return log_path_of(cli(home, "config.py").stderr)


def mutate(event: str, change: Callable[[dict[str, Any]], Any]) -> Callable[[list[str]], int]:
    """Apply ``change`` to the first record of ``event``; returns the index of its line."""
    def apply(lines: list[str]) -> int:
        index = next(i for i, line in enumerate(lines) if json.loads(line)["event"] == event)
        record = json.loads(lines[index])
        change(record)
        lines[index] = json.dumps(record)
        return index
    return apply


def replace(event: str, text: str) -> Callable[[list[str]], int]:
    def apply(lines: list[str]) -> int:
        index = next(i for i, line in enumerate(lines) if json.loads(line)["event"] == event)
        lines[index] = text
        return index
    return apply


MUTATIONS = {
    "a list as seq": mutate("finished", lambda r: r.update(seq=[r["seq"]])),
    "text as a time": mutate("finished", lambda r: r.update(end="noon")),
    "a missing seq": mutate("queued", lambda r: r.pop("seq")),
    "a number as a name": mutate("queued", lambda r: r.update(name=42)),
    "text as cores": mutate("finished", lambda r: r.update(cores="0-1")),
    "a boolean as a return code": mutate("finished", lambda r: r.update(returncode=True)),
    "an endless duration": mutate("finished", lambda r: r.update(start=-math.inf)),
    "a time past every calendar": mutate("finished", lambda r: r.update(start=1e300)),
    "a number as a runner's name": mutate("runner", lambda r: r.update(name=7)),
    "a list as a runner's slots": mutate("runner", lambda r: r.update(max_jobs=[2])),
    "text as the core pool": mutate("runner", lambda r: r.update(core_pool="0-1")),
    "a list as the counts": mutate("run_finished", lambda r: r.update(counts=[1])),
    "text as the exit status": mutate("run_finished", lambda r: r.update(exit_status="ok")),
    "text as the start": mutate("run_started", lambda r: r.update(time="noon")),
    "a number as the config": mutate("run_started", lambda r: r.update(config=3)),
    "a list as the record": replace("finished", "[1, 2, 3]"),
    "a number as the event": replace("finished", '{"event": 5, "seq": 1}'),
    "no object at all": replace("queued", "null"),
}


def warnings_in(stderr: str, path: Path) -> list[str]:
    return [line for line in stderr.splitlines() if str(path) in line and "line" in line]


def views(path: Path, base: Path, out: Path) -> dict[str, tuple[str, ...]]:
    spec = str(path)
    return {"show": ("show", spec), **{f"show {f}": ("show", spec, "--format", f) for f in ("csv", "tsv", "json")},
            "show --failed": ("show", spec, "--failed"), "show --slowest": ("show", spec, "--slowest", "2"),
            "report": ("report", spec, "-o", str(out / "report.html")),
            "export --trace": ("export", spec, "--trace", str(out / "trace.json")),
            "export --junit": ("export", spec, "--junit", str(out / "junit.xml")),
            "export --csv": ("export", spec, "--csv", str(out / "rows.csv")),
            "compare": ("compare", str(base), spec), "compare json": ("compare", spec, str(base), "--format", "json")}


def view_at_descriptors(*args: str) -> tuple[int, str]:
    """A view run in this process (the CLI's own entry point: 14 views of 18 logs as subprocesses took a
    minute) with its stdout and stderr at file descriptors 1 and 2, as a process has them: ``compare`` reads
    each run in a forked child, which writes its warning there."""
    import gc

    from parallux._views.subcommands import main
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        saved = [os.dup(1), os.dup(2)]
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            with open(1, "w", closefd=False) as stdout, open(2, "w", buffering=1, closefd=False) as stderr, \
                    contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                try:
                    status = main(list(args))
                finally:
                    gc.enable()  # main turns the collector off for its short process
        finally:
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
        err.seek(0)
        return status, err.read().decode()


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_record_that_does_not_fit_is_skipped_with_a_warning_by_every_view(
        mutation: str, real_log: Path, tmp_path: Path) -> None:
    lines = real_log.read_text().splitlines()
    index = MUTATIONS[mutation](lines)
    run_id = json.loads(real_log.read_text().splitlines()[0])["run_id"]
    history = runs_dir(tmp_path) / "config-key"
    history.mkdir(parents=True)
    path = history / f"{run_id}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.MonkeyPatch.context() as patch:  # the views in this process, as run_cli runs them
        patch.setenv("HOME", str(tmp_path))
        patch.chdir(tmp_path)
        for name, args in views(path, real_log, tmp_path).items():
            status, stderr = view_at_descriptors(*args)
            assert status == 0 and "Traceback" not in stderr, (name, stderr)
            warned = warnings_in(stderr, path)
            assert len(warned) == 1 and f"line {index + 1}" in warned[0], (name, stderr)
            assert len(stderr.splitlines()) <= 2, (name, stderr)  # the warning, and "written to"
    done = run_cli(tmp_path, "runs", "--all", "--format", "json")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) <= 1, done.stderr
    assert [r["run_id"] for r in json.loads(done.stdout)] in ([run_id], [])
    assert run_cli(tmp_path, "runs", "--all").returncode == 0


def test_one_bad_log_never_hides_the_others_from_runs(real_log: Path, tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    good = [json.loads(log_path_of(cli(tmp_path, "config.py").stderr).read_text().splitlines()[0])["run_id"]
            for _ in range(2)]
    history = runs_dir(tmp_path) / "elsewhere"
    history.mkdir()
    lines = real_log.read_text().splitlines()
    header = json.loads(lines[0])
    bad_header = history / "20000101-000000-aaaaaa.jsonl"
    bad_header.write_text(json.dumps({**header, "time": "noon", "run_id": bad_header.stem}) + "\n"
                          + "\n".join(lines[1:]) + "\n")
    footer = json.loads(lines[-1])
    bad_footer = history / "20000101-000000-bbbbbb.jsonl"
    bad_footer.write_text(json.dumps({**header, "run_id": bad_footer.stem}) + "\n" + "\n".join(lines[1:-1])
                          + "\n" + json.dumps({**footer, "counts": "many", "started": [1]}) + "\n")
    (history / "20000101-000000-cccccc.jsonl").write_bytes(b"\xff\xfe\x00garbage\n[]\n")
    (history / "20000101-000000-dddddd.jsonl").write_text('{"event": "run_started", "run_id": ["x"]}\n')
    for args in (("runs",), ("runs", "--all"), ("runs", "--format", "csv"), ("runs", "--all", "--format", "tsv")):
        done = run_cli(tmp_path, *args)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert all(run_id in done.stdout for run_id in good), done.stdout
    listed = json.loads(cli(tmp_path, "runs", "--all", "--format", "json").stdout)
    assert set(good) <= {r["run_id"] for r in listed}
    assert bad_footer.stem in {r["run_id"] for r in listed}  # its summary does not fit: a run without one
    assert cli(tmp_path, "show").stdout.startswith(f"run      {good[1]}")


# -- any content ------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)


def as_record(line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


@st.composite
def mutated_lines(draw: st.DrawFn, lines: list[str]) -> list[str]:
    """A real log with a few of its records changed: a field's value or a field dropped, a line replaced by
    other JSON or by bytes, cut short, or two lines glued together."""
    lines = list(lines)
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        record = as_record(lines[index])
        how = draw(st.sampled_from(["value", "drop", "json", "text", "cut", "glue"]))
        if how == "value" and record:
            record[draw(st.sampled_from(sorted(record)))] = draw(JSON_VALUES)
            lines[index] = json.dumps(record)
        elif how == "drop" and record:
            del record[draw(st.sampled_from(sorted(record)))]
            lines[index] = json.dumps(record)
        elif how == "json":
            lines[index] = json.dumps(draw(JSON_VALUES))
        elif how == "text":
            lines[index] = draw(st.text(max_size=30))
        elif how == "cut":
            lines[index] = lines[index][:draw(st.integers(0, len(lines[index])))]
        elif how == "glue" and index + 1 < len(lines):
            lines[index:index + 2] = [lines[index][:draw(st.integers(0, len(lines[index])))] + lines[index + 1]]
    return lines


@pytest.fixture(scope="module")
def real_lines(real_log: Path) -> list[str]:
    return real_log.read_text().splitlines()


def in_process(*args: str) -> tuple[int, str]:
    """A view run in this process (the CLI's own entry point, hundreds of times faster than a subprocess)."""
    import gc

    from parallux._views.subcommands import main
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = main(list(args))
        finally:
            gc.enable()  # main turns the collector off for its short process
    return status, stderr.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_view_survives_random_changes_to_a_real_log(data: st.DataObject, real_lines: list[str],
                                                           real_log: Path, tmp_path: Path) -> None:
    lines = data.draw(mutated_lines(real_lines))
    scratch = tmp_path / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    history = runs_dir(scratch) / "config-key"
    history.mkdir(parents=True)
    path = history / f"{real_log.stem}.jsonl"
    path.write_text("\n".join(lines) + "\n", errors="surrogateescape")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(scratch / ".local" / "state"))
        for args in [*views(path, real_log, scratch).values(), ("runs", "--all"), ("runs", "--format", "json")]:
            status, stderr = in_process(*args)
            assert status == 0, (args, stderr)
            assert len(stderr.splitlines()) <= 3, (args, stderr)
    assert os.path.exists(path)


def test_resume_takes_no_completion_record_that_does_not_fit(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    cli(tmp_path, "config.py", "--", "n=3")
    for name, change in (("0", {"attempt": "x", "start": "noon"}), ("1", {"cores": "0-3", "end": 1e300})):
        record_path = tmp_path / "ws" / "c" / name / "result.json"
        record = json.loads(record_path.read_text())
        record.update(change)
        record_path.write_text(json.dumps(record))
    again = cli(tmp_path, "--resume", "config.py", "--", "n=3")
    assert "resumed: 2 commands skipped" in again.stderr  # c2 and p0; c0 and c1 run again
    warned = [line for line in again.stderr.splitlines() if "result.json" in line]
    assert len(warned) == 1 and str(tmp_path / "ws" / "c" / "0") in warned[0] and "1 more" in warned[0]
    rows = {r["name"]: r for r in shown(tmp_path, "latest")["commands"]}
    assert (rows["c0"]["resumed"], rows["c1"]["resumed"], rows["c2"]["resumed"]) == (False, False, True)
