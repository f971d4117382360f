"""A config's arguments and its typos, through the real CLI: declared arguments (``goal.arg``) convert and
default, a ``key=`` the config never declared stops the run before anything starts, a misspelt method of
``goal`` or of a runner is a config error, and a dry run plans what a real run would do without failing on
files the run itself would make. ``parallux runs`` tells runs of one config apart by their arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli, write_config

DECLARING = """
    from pathlib import Path
    from parallux import goal
    sizes = goal.arg("sizes", default=[64], type=lambda text: [int(s) for s in text.split(",")],
                     help="matrix sizes to try")
    reps = goal.arg("reps", default=3, type=int)
    goal.local(workspace="ws")
    for size in sizes:
        goal.run(f"touch ../../ran-{size}", work_relpath=f"w{size}")
    print("sizes", sizes, "reps", reps)
"""


def ran(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ran"))


# -- declared arguments ------------------------------------------------------------------------------------


def test_arg_converts_each_type_and_falls_back_to_the_default(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        values = [goal.arg("size", type=int), goal.arg("ratio", 1.0, type=float), goal.arg("fast", type=bool),
                  goal.arg("slow", type=bool), goal.arg("name"), goal.arg("pair", type=lambda t: t.split(":")),
                  goal.arg("unset", default="dflt"), goal.arg("none")]
        print(repr(values))
        print(goal.args)
    """)
    done = run_cli(tmp_path, "config.py", "--", "size=12", "ratio=0.5", "fast=YES", "slow=0", "name=x=y",
                   "pair=a:b", "flag")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == repr([12, 0.5, True, False, "x=y", ["a", "b"], "dflt", None])
    assert lines[1] == repr({"size": "12", "ratio": "0.5", "fast": "YES", "slow": "0", "name": "x=y",
                             "pair": "a:b"})  # goal.args stays as it is


@pytest.mark.parametrize("declaration, given, words", [
    ('goal.arg("size", type=int)', "size=12x", ["'size'", "'12x'", "int"]),
    ('goal.arg("ratio", type=float)', "ratio=half", ["'ratio'", "'half'", "float"]),
    ('goal.arg("fast", type=bool)', "fast=maybe", ["'fast'", "'maybe'", "true", "no"]),
    ('goal.arg("pair", type=lambda t: t.split(":")[1])', "pair=ab", ["'pair'", "'ab'", "IndexError"]),
])
def test_arg_conversion_error_is_a_config_error_naming_argument_and_value(
        tmp_path: Path, declaration: str, given: str, words: list[str]) -> None:
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws")
        value = {declaration}
        goal.run("touch ../../ran", work_relpath="w")
    """)
    done = run_cli(tmp_path, "config.py", "--", given)
    assert done.returncode == 2, done.stderr
    assert "ConfigError: goal.arg(): " in done.stderr and "Traceback" not in done.stderr
    assert all(word in done.stderr for word in words), done.stderr
    assert ran(tmp_path) == []


@pytest.mark.parametrize("options", [[], ["--dry-run"]])
def test_undeclared_key_is_a_config_error_with_the_closest_declared_name_and_nothing_runs(
        tmp_path: Path, options: list[str]) -> None:
    write_config(tmp_path, DECLARING)
    done = run_cli(tmp_path, "config.py", *options, "--", "size=128")
    assert done.returncode == 2, done.stderr
    assert "'size' (did you mean 'sizes'?)" in done.stderr
    assert "the arguments are: sizes, reps" in done.stderr
    assert "Traceback" not in done.stderr and "sizes [" not in done.stdout
    assert ran(tmp_path) == [] and not (tmp_path / "ws").exists()


def test_declared_arguments_given_run_the_campaign_they_say(tmp_path: Path) -> None:
    write_config(tmp_path, DECLARING)
    done = run_cli(tmp_path, "config.py", "--", "sizes=128,256", "reps=2", "extra-flag")
    assert done.returncode == 0, done.stderr
    assert "sizes [128, 256] reps 2" in done.stdout
    assert ran(tmp_path) == ["ran-128", "ran-256"]


def test_undeclared_key_of_a_config_that_submits_nothing_is_found_when_it_ends(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.arg("target", default="local")
        print("config ended")
    """)
    done = run_cli(tmp_path, "config.py", "--", "targt=ssh")
    assert done.returncode == 2, done.stderr
    assert "'targt' (did you mean 'target'?)" in done.stderr


def test_a_config_that_declares_nothing_takes_any_key(tmp_path: Path) -> None:
    write_config(tmp_path, "from parallux import goal\ngoal.run('true')\nprint(goal.args)\n")
    done = run_cli(tmp_path, "config.py", "--", "anything=1")
    assert done.returncode == 0, done.stderr
    assert "{'anything': '1'}" in done.stdout


def test_declaring_an_argument_twice_differently_is_a_config_error(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        assert goal.arg("n", 1, type=int) == goal.arg("n", 1, type=int) == 1   # the same twice is fine
        goal.arg("n", 2, type=int)
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2, done.stderr
    assert "goal.arg(): 'n' is declared twice" in done.stderr and "config.py\", line 4" in done.stderr


@pytest.mark.parametrize("call, words", [
    ('goal.arg("")', ["name"]),
    ('goal.arg("a=b")', ["name"]),
    ('goal.arg("n", type="int")', ["type"]),
    ('goal.arg("n", help=3)', ["help"]),
    ('goal.arg("n", defualt=3)', ["did you mean 'default'?"]),
])
def test_arg_refuses_bad_declarations(tmp_path: Path, call: str, words: list[str]) -> None:
    write_config(tmp_path, f"from parallux import goal\n{call}\n")
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2, done.stderr
    assert "ConfigError: goal.arg()" in done.stderr and all(w in done.stderr for w in words), done.stderr


def test_dry_run_lists_declared_arguments_with_their_values_and_help(tmp_path: Path) -> None:
    write_config(tmp_path, DECLARING)
    done = run_cli(tmp_path, "config.py", "--dry-run", "--", "sizes=8,16")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "arg sizes=[8, 16] (given: sizes=8,16) -- matrix sizes to try"
    assert lines[1] == "arg reps=3 (default)"
    assert ran(tmp_path) == []


# -- typos of goal's and a runner's methods ---------------------------------------------------------------


@pytest.mark.parametrize("call, what, attribute, closest", [
    ('goal.argz("x")', "goal", "argz", "'arg'"),
    ('goal.setParalel(2)', "goal", "setParalel", "'setParallel'"),
    ('goal.local(workspace="ws").putt("a", "b")', "runner 'local'", "putt", "'put'"),
    ('goal.local(workspace="ws").statuz()', "runner 'local'", "statuz", "'status'"),
])
def test_unknown_method_is_a_config_error_with_did_you_mean(tmp_path: Path, call: str, what: str, attribute: str,
                                                            closest: str) -> None:
    write_config(tmp_path, f"""
        from parallux import goal
        assert not hasattr(goal, "nothing_like_it") and getattr(goal.local(name="probe"), "nope", 7) == 7
        {call}
        goal.run("touch ../../ran")
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2, done.stderr
    assert f"UnknownAttributeError: {what} has no method or attribute {attribute!r} (did you mean {closest}?)" \
        in done.stderr  # (a ConfigError: exit status 2)
    assert "config.py\", line 4" in done.stderr and "\nAttributeError" not in done.stderr
    assert ran(tmp_path) == []


# -- dry runs ------------------------------------------------------------------------------------------------


def test_dry_run_config_error_after_planned_commands_exits_2(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.run("true").sync()
        goal.run("true", threds=2)
    """)
    done = run_cli(tmp_path, "config.py", "--dry-run")
    assert done.returncode == 2, done.stderr
    assert "did you mean 'threads'?" in done.stderr


BUILD_STAGE_RUN = """
    import os
    from parallux import goal
    build = goal.local(name="build", workspace="build")
    node = goal.local(name="node", workspace="node")
    goal.setRunner(node)
    build.run("mkdir -p out && printf '#!/bin/sh\\necho tool ran\\n' > out/tool && chmod +x out/tool",
              work_relpath="b").sync()
    print(node.put("build/b/out/tool", "stage/bin/"))
    print(goal.put("build/b/out", "stage/all"))
    print(goal.run(f"{node.workspace}/stage/bin/tool", work_relpath="r").sync().read_stdout().strip() or "-")
"""


def test_dry_run_put_of_a_source_a_planned_command_would_make_is_a_plan_line(tmp_path: Path) -> None:
    write_config(tmp_path, BUILD_STAGE_RUN)
    done = run_cli(tmp_path, "config.py", "--dry-run")
    assert done.returncode == 0, done.stderr
    puts = [line for line in done.stdout.splitlines() if line.startswith("put ")]
    tool, out = tmp_path / "build/b/out/tool", tmp_path / "build/b/out"
    assert puts == [f"put {tool} -> node:{tmp_path / 'node/stage/bin'}/ (not there yet: made by the run)",
                    f"put {out} -> node:{tmp_path / 'node/stage/all'} (not there yet: made by the run)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.py"]
    real = run_cli(tmp_path, "config.py")  # and the config is right: it runs
    assert real.returncode == 0, real.stderr
    assert real.stdout.splitlines()[-1] == "tool ran"


def test_dry_run_inputs_a_planned_command_would_make_are_a_plan_line(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.run("mkdir -p out && echo built > out/bench", name="build", work_relpath="build").sync()
        bench = goal.run("cat " + str(goal.args["root"]) + "/out/bench", name="run", work_relpath="run",
                         inputs=[str(goal.args["root"]) + "/out/bench"], cwd=goal.args["root"])
        print("read:", bench.sync().read_stdout().strip() if not goal.dry_run else "-")
    """)
    dry = run_cli(tmp_path, "config.py", "--dry-run", "--", f"root={tmp_path}")
    assert dry.returncode == 0, dry.stderr
    assert f"inputs: {tmp_path / 'out/bench'} (not there yet: made by the run)" in dry.stdout.splitlines()
    assert not (tmp_path / "out").exists()
    real = run_cli(tmp_path, "config.py", "--", f"root={tmp_path}")
    # outside a dry run a missing input is an error at the call (the build made out/ in its own work dir)
    assert real.returncode == 1 and "inputs: no such file or directory" in real.stderr
    (tmp_path / "out").mkdir()
    (tmp_path / "out/bench").write_text("built\n")
    real = run_cli(tmp_path, "config.py", "--", f"root={tmp_path}")
    assert real.returncode == 0, real.stderr
    assert real.stdout.splitlines()[-1] == "read: built"


def test_put_of_a_missing_source_outside_a_dry_run_is_still_a_clear_error(tmp_path: Path) -> None:
    write_config(tmp_path, """
        from parallux import goal
        goal.put("nowhere/tool", "stage/")
    """)
    done = run_cli(tmp_path, "config.py")
    assert done.returncode == 2, done.stderr
    assert "RunnerError" in done.stderr and "No such file or directory" in done.stderr
    assert "not there yet" not in done.stderr


# -- parallux runs ---------------------------------------------------------------------------------------------


def test_runs_lists_the_arguments_of_each_run(tmp_path: Path) -> None:
    write_config(tmp_path, "from parallux import goal\ngoal.run('true')\n")
    for target in ("local", "ssh", "slurm"):
        done = run_cli(tmp_path, "config.py", "--", f"target={target}", "--fast")
        assert done.returncode == 0, done.stderr
    table = run_cli(tmp_path, "runs").stdout.splitlines()
    assert table[0].split()[-1] == "ARGS"
    assert [line.split()[-2:] for line in table[1:]] == [
        ["target=slurm", "--fast"], ["target=ssh", "--fast"], ["target=local", "--fast"]]
    rows = run_cli(tmp_path, "runs", "--format", "csv").stdout.splitlines()
    assert rows[0].endswith(",args") and rows[1].endswith(",target=slurm --fast")
    listed = json.loads(run_cli(tmp_path, "runs", "--format", "json").stdout)
    assert [r["argv"] for r in listed][0] == ["target=slurm", "--fast"]


def test_args_example_refuses_a_misspelt_key_and_lists_its_arguments_in_a_dry_run(tmp_path: Path) -> None:
    example = str(REPO / "examples" / "args.py")
    done = run_cli(tmp_path, example, "--", "cse=fft", f"workspace={tmp_path / 'ws'}")
    assert done.returncode == 2 and "'cse' (did you mean 'case'?)" in done.stderr, done.stderr
    planned = run_cli(tmp_path, example, "--dry-run", "--", "repeat=3")
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.splitlines()[:3] == ["arg case='hello' (default) -- the case to run",
                                               "arg repeat=3 (given: repeat=3) -- how many times",
                                               "arg workspace='workspace/args' (default) -- where the work dirs go"]
    assert [p.name for p in tmp_path.iterdir()] == [".local"]  # the first run's log: no work dir, nothing ran
