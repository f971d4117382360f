"""One validation path for every call of ``goal`` and of a runner (SPEC 11), through the real CLI: a mistyped
keyword, a missing or surplus argument or a value of the wrong type is a ConfigError naming the call, the
keyword, the closest valid one and all of them -- exit 2, nothing run, never a bare TypeError. And
``goal.dry_run``, so that a config can keep its own side effects out of a dry run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.helpers import run_cli, write_config

PRELUDE = """\
from parallux import goal, workloads
local = goal.local(workspace="ws")
goal.setRunner(local)
goal.schd("touch ../../ran-anyway", work_relpath="innocent")
"""
CALL_LINE = PRELUDE.count("\n") + 1

# (call, the call as the message names it, the bad keyword, the closest valid one, one of the valid ones)
MISTYPED = [
    ('goal.local(name="x", max_job=2)', "goal.local()", "max_job", "max_jobs", "core_pool"),
    ('goal.local(name="x", numa_node={0: [0]})', "goal.local()", "numa_node", "numa_nodes", "membind"),
    ('goal.ssh("h", max_job=2)', "goal.ssh()", "max_job", "max_jobs", "workspace"),
    ('goal.ssh("h", keepalive_cont=2)', "goal.ssh()", "keepalive_cont", "keepalive_count", "identity_file"),
    ('goal.setRunner(runner=local)', "goal.setRunner()", "runner", "runners", "runners"),
    ('goal.setParallel(nn=2)', "goal.setParallel()", "nn", "n", "n"),
    ('goal.setEnv("A", vaule="1")', "goal.setEnv()", "vaule", "value", "key"),
    ('goal.setRetries(nn=2)', "goal.setRetries()", "nn", "n", "n"),
    ('goal.setHalt("soon", failure=2)', "goal.setHalt()", "failure", "failures", "mode"),
    ('goal.setScheduler(func=None)', "goal.setScheduler()", "func", "fn", "fn"),
    ('goal.runner_status(runners="local")', "goal.runner_status()", "runners", "runner", "runner"),
    ('workloads("*.txt", level=1)', "workloads()", "level", "levels", "work_prefix"),
    ('local.status(numa=0)', "local.status()", "numa", "numa_node", "numa_node"),
    ('local.configured_cores(numa_nod=0)', "local.configured_cores()", "numa_nod", "numa_node", "numa_node"),
    ('local.available_core_count(numa_nod=0)', "local.available_core_count()", "numa_nod", "numa_node",
     "numa_node"),
    ('local.read_file(paht="x")', "local.read_file()", "paht", "path", "path"),
    ('goal.schd("echo", thread=2)', "goal.schd()", "thread", "threads", "work_relpath"),
    ('goal.run("echo", timout=3)', "goal.run()", "timout", "timeout", "retries"),
    ('local.run("echo", work_relpth="w")', "local.run()", "work_relpth", "work_relpath", "cwd"),
]


def run_call(tmp_path: Path, call: str):  # type: ignore[no-untyped-def]
    write_config(tmp_path, PRELUDE + call + "\n")
    return run_cli(tmp_path, "config.py")


def assert_refused_before_anything_ran(tmp_path: Path, done) -> None:  # type: ignore[no-untyped-def]
    assert done.returncode == 2, done.stderr
    assert f'config.py", line {CALL_LINE}' in done.stderr  # points at the call in the config
    assert "Traceback" not in done.stderr and "TypeError" not in done.stderr
    assert not (tmp_path / "ran-anyway").exists()


@pytest.mark.parametrize("call, where, keyword, closest, valid", MISTYPED, ids=[m[0] for m in MISTYPED])
def test_keywords_a_mistyped_keyword_names_the_call_the_closest_and_all(
        tmp_path: Path, call: str, where: str, keyword: str, closest: str, valid: str) -> None:
    done = run_call(tmp_path, call)
    assert_refused_before_anything_ran(tmp_path, done)
    message = next(line for line in done.stderr.splitlines() if line.startswith("ConfigError: "))
    assert message.startswith(f"ConfigError: {where}: unknown ")
    assert f"{keyword!r} (did you mean {closest!r}?)" in message
    listed = message.split(" are: ", 1)[1].split(", ")
    assert closest in listed and valid in listed and keyword not in listed


BAD_ARGUMENTS = [
    ('goal.ssh()', "goal.ssh(): missing the argument 'name'"),
    ('goal.setEnv("A")', "goal.setEnv(): missing the argument 'value'"),
    ('workloads("*.txt")', "workloads(): missing the argument 'levels'"),
    ('goal.local("x", "ws", 2, None, None, None, True)', "goal.local() takes at most 6 positional arguments"),
    ('goal.setHalt("soon", 2, 3)', "goal.setHalt() takes at most 2 positional arguments (mode, failures), not 3"),
    ('goal.issue(1)', "goal.issue() takes no arguments, not 1"),
    ('goal.local("x", name="y")', "goal.local(): 'name' given twice"),
    ('local.status(0, 1)', "local.status() takes at most 1 positional argument (numa_node), not 2"),
    ('goal.schd()', "goal.schd(): the command is missing"),
    ('goal.schd("echo", "fast")', "goal.schd() takes one positional argument, the command, not 2"),
    ('goal.run()', "goal.run(): the command is missing"),
    ('local.run("echo", 4)', "local.run() takes one positional argument, the command, not 2"),
    # values of the wrong type: the message names the call and the keyword
    ('goal.local(name="x", max_jobs="2")', "goal.local(): max_jobs must be an int, not str"),
    ('goal.setParallel("3")', "goal.setParallel(n) must be an int, not str"),
    ('goal.setRetries(1.5)', "goal.setRetries(n) must be an int, not float"),
    ('goal.setRunner(42)', "goal.setRunner() takes a runner, a runner's name or a list of them, not 42"),
    ('goal.runner_status(3)', "goal.runner_status(): a runner is a runner object or a runner's name, not 3"),
    ('workloads("*", levels=1, strip_suffix="yes")', "workloads(): strip_suffix must be True or False"),
    ('local.status(numa_node="0")', "local.status(): numa_node must be an int node id, not '0'"),
    ('local.read_file(None)', "local.read_file(): path must be a path on the runner (a non-empty str), not None"),
]


@pytest.mark.parametrize("call, message", BAD_ARGUMENTS, ids=[b[0] for b in BAD_ARGUMENTS])
def test_keywords_missing_surplus_and_mistyped_arguments_are_config_errors(
        tmp_path: Path, call: str, message: str) -> None:
    done = run_call(tmp_path, call)
    assert_refused_before_anything_ran(tmp_path, done)
    assert f"ConfigError: {message}" in done.stderr


def test_keywords_a_config_can_catch_the_error_as_a_ConfigError(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import ConfigError, goal
        try:
            goal.local(max_job=2)
        except ConfigError as exc:
            print("caught:", exc)
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("caught: goal.local(): unknown option 'max_job' (did you mean 'max_jobs'?)")


def test_keywords_a_TypeError_raised_inside_a_call_is_not_disguised(tmp_path: Path) -> None:
    # The translation is for the call's own signature only: a TypeError from the config's code (here, its
    # scheduler function) keeps its type and its traceback.
    write_config(tmp_path, """
        from parallux import goal
        goal.local(workspace="ws")
        def pick(runners, threads):
            return len(threads)
        goal.setScheduler(pick)
        goal.run("true").sync()
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 1
    assert "TypeError" in done.stderr and "in pick" in done.stderr


# -- goal.dry_run ------------------------------------------------------------------------------------------------

SUMMARY_CONFIG = """
    import csv
    from parallux import goal
    goal.local(workspace="ws")
    print("dry run:", goal.dry_run)
    results = [goal.run(f"echo {i}", work_relpath=f"w{i}") for i in range(3)]
    rows = [(r.sync().name, r.sync().status, r.sync().read_stdout().strip()) for r in results]
    if not goal.dry_run:
        with open("summary.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
"""


def test_keywords_dry_run_lets_a_config_skip_its_own_side_effects(tmp_path: Path) -> None:
    write_config(tmp_path, SUMMARY_CONFIG)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "dry run: False"
    real = (tmp_path / "summary.csv").read_text()
    assert [row[1:] for row in csv.reader(real.splitlines())] == [["ok", "0"], ["ok", "1"], ["ok", "2"]]
    done = run_cli(tmp_path, "config.py", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "dry run: True" in done.stdout
    assert (tmp_path / "summary.csv").read_text() == real  # the real numbers, not "planned"


def test_keywords_goal_dry_run_cannot_be_set(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.dry_run = True
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 1
    assert "AttributeError: goal.dry_run cannot be set" in done.stderr
