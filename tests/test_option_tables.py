"""The option tables (``_command_options``, ``_runner_options``): frozen, and what the calls are built from."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from parallux._command_options import COMMAND, SHARED
from parallux._errors import ConfigError
from parallux._goal import Goal
from parallux._handles import Command, Completion
from parallux._option import Option, Options
from parallux._options import MISSING
from parallux._result import Result
from parallux._runner_options import RUNNER, SLURM, SSH
from parallux._spec import Spec


def test_Options_are_never_changed() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        COMMAND.options[0].default = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        COMMAND.names = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        COMMAND.defaults["threads"] = 2
    with pytest.raises(ValueError, match="defined twice"):
        Options(Option("a", 1, None, "", ""), Option("a", 2, None, "", ""))


# today's messages (tests/test_validation.py runs the same calls through the CLI)
REFUSED = [
    ({"colour": "red"}, "goal.schd(): unknown option 'colour'; the options are: name, threads"),
    ({"treads": 2}, "unknown option 'treads' (did you mean 'threads'?)"),
    ({"threads": 0}, "threads must be >= 1, not 0"),
    ({"threads": "2"}, "threads must be an int, not str ('2')"),
    ({"cores": [0, 0]}, "cores lists a core twice: [0, 0]"),
    ({"cores": [0], "threads": 2}, "threads=2 contradicts cores=[0] (1 cores)"),
    ({"numa_node": "0"}, "numa_node must be an int node id, not '0'"),
    ({"timeout": 0}, "timeout must be a positive number of seconds, not 0"),
    ({"check": "yes"}, "check must be True or False, not 'yes'"),
    ({"memory": "lots"}, "memory='lots' is not a size"),
    ({"env": {"N": 4}}, "env: the value of N must be a str"),
    ({"name": ""}, "name must be a non-empty str, not ''"),
    ({"retries": -1}, "retries must be >= 0, not -1"),
    ({"repeat": 0}, "repeat must be >= 1, not 0"),
    ({"warmup": -1}, "warmup must be >= 0, not -1"),
    ({"retry_on": ["late"]}, "retry_on: 'late' is not a status that can be retried"),
]


@pytest.mark.parametrize(("given", "message"), REFUSED, ids=[str(g) for g, _ in REFUSED])
def test_COMMAND_refuses_like_schd(given: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        COMMAND.checked(given, "goal.schd()")
    assert message in str(refused.value)


def test_COMMAND_gives_defaults_and_what_options_imply() -> None:
    values = COMMAND.checked({"cores": [3, 1], "timeout": 5}, "goal.schd()", {"retries": 2})
    assert values == {**COMMAND.defaults, "cores": (1, 3), "threads": 2, "timeout": 5.0, "retries": 2}
    assert COMMAND.checked({}, "goal.schd()") == dict(COMMAND.defaults)


def test_Spec_fields_are_the_shared_options() -> None:
    assert Spec.__slots__[1:len(SHARED) + 1] == SHARED  # (after the completion; then what registration derives)
    spec = Spec(Completion())
    assert {name: getattr(spec, name) for name in SHARED} == {o.name: o.default for o in COMMAND.kept("spec")}
    handle = Command(Completion(), spec=spec)
    for option in COMMAND.kept("spec"):  # the handle reads each under its own name
        assert getattr(handle, option.field) is getattr(spec, option.name)


def test_Result_fields_and_record_are_the_flagged_options() -> None:
    handle = Command(Completion(), seq=3, name="a", work_relpath="w/a", command="true", command_text="true",
                     timeout=5.0, threads=2)
    result = Result(handle, "ok")
    for option in COMMAND.flagged("result"):
        assert getattr(result, option.field) == getattr(handle, option.field)
    assert [o.name for o in COMMAND.flagged("record")] == ["name", "threads", "work_relpath", "inputs"]


def parameters(method: Any) -> list[tuple[str, str, Any]]:
    return [(p.name, p.kind.name, p.default) for p in inspect.signature(method).parameters.values()][1:]


def test_Goal_signatures_are_the_runner_tables() -> None:
    runner = [(o.name, o.keyword_only) for o in RUNNER]
    local = parameters(Goal.local)
    assert [(name, kind == "KEYWORD_ONLY") for name, kind, _ in local] == [
        (name, keyword_only) for name, keyword_only in runner]  # positional up to membind
    assert local[0][2] == "local" and local[1:] == [(o.name, "KEYWORD_ONLY" if o.keyword_only else
                                                     "POSITIONAL_OR_KEYWORD", o.default) for o in RUNNER][1:]
    ssh = parameters(Goal.ssh)
    assert [name for name, _, _ in ssh] == ["name", "host", "user", "port", *RUNNER.names[1:6],
                                              *[o.name for o in SSH if o.keyword_only],
                                              *[o.name for o in RUNNER if o.keyword_only]]
    assert ssh[0][2] is inspect.Parameter.empty and all(kind != "VAR_KEYWORD" for _, kind, _ in ssh)
    slurm = parameters(Goal.slurm)
    assert {name for name, _, _ in slurm} == {*SLURM.names, *RUNNER.names}
    assert [kind for name, kind, _ in slurm if name != "name"] == ["KEYWORD_ONLY"] * (len(slurm) - 1)
    assert MISSING not in [default for _, _, default in local + slurm]


def test_SLURM_options_make_the_sbatch_request() -> None:
    from parallux._transports._slurm._commands import Request
    argv = Request.of("cl", SLURM.checked({}, "goal.slurm()")).sbatch_argv()
    assert argv == ["sbatch", "--parsable", "--no-requeue", "--job-name=parallux:cl", "--nodes=1", "--output=/dev/null",
                    "--exclusive"]
    given = {"nodes": 2, "partition": "p", "time": " 1:00:00 ", "qos": "q", "cpus_per_node": 4,
             "sbatch_options": {"mem": "8G", "exclusive": True}, "python": "/usr/bin/python3"}
    argv = Request.of("cl", SLURM.checked(given, "goal.slurm()")).sbatch_argv(test_only=True)
    assert argv[4:] == ["--nodes=2", "--output=/dev/null", "--partition=p", "--qos=q", "--time=1:00:00",
                        "--ntasks-per-node=1", "--cpus-per-task=4", "--mem=8G", "--exclusive", "--test-only"]
    with pytest.raises(ConfigError, match="time must be a Slurm time limit"):
        SLURM.checked({"time": 5}, "goal.slurm()")
