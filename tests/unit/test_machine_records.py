"""The machine, probe and config records of a run log (SPEC 17), as plain code: what the schema says of a record
that does not fit, and the first line that differs between two probe outputs.
"""

from __future__ import annotations

from typing import Any

from tests.machine_logs import SHA_A
from tests.synthetic import machine_environment


def test_schema_says_what_does_not_fit_in_each_new_record() -> None:
    from parallux._views.schema import problem
    environment = machine_environment(memory_bytes=3 << 40)  # 3 TiB: a size beyond the bound of times and counts
    machine = {"event": "machine", "time": 1.0, "label": "vm", "runners": ["local"], "boot_id": None,
               "machine_id": None, "environment": environment}
    assert problem(machine) is None
    assert problem({**machine, "environment": {**environment, "cpus": [0, "1"]}}) == \
        "machine whose environment.cpus holds something else than numbers"
    assert problem({**machine, "environment": {**environment, "governors": {"performance": 0}}}) == \
        "machine whose environment.governors holds something else than lists of numbers"
    assert problem({**machine, "environment": {**environment, "sockets": 1e300}}) == \
        "machine whose environment.sockets is a number"  # (a float where a count goes)
    assert problem({**machine, "environment": {**environment, "logical_cpus": 10**15}}) == \
        "machine whose environment.logical_cpus is out of range (1000000000000000)"
    assert problem({**machine, "runners": "local"}) == "machine whose runners is text"
    assert problem({"event": "probe", "time": 1.0, "name": "gcc", "returncode": "0"}) == \
        "probe whose returncode is text"
    assert problem({"event": "machine_load", "time": 1.0, "label": "vm", "load": [1.0, float("nan")]}) == \
        "machine_load whose load holds something else than numbers"
    assert problem({"event": "noise", "time": 1.0, "machine": "vm"}) == "noise without message"
    started = {"event": "run_started", "schema": 2, "run_id": "r", "argv": [], "time": 1.0,
               "config_sha256": SHA_A, "git": {"commit": None, "dirty": False, "root": "/x"}}
    assert problem(started) is None
    assert problem({**started, "git": {"commit": 5}}) == "run_started whose git.commit is a number"
    assert problem({**started, "config_sha256": 5}) == "run_started whose config_sha256 is a number"


def test_the_first_line_that_differs_between_two_probe_outputs() -> None:
    from parallux._views.differences import differences, first_difference
    assert first_difference("a\nb\nc\n", "a\nB\nc\n") == (2, "b", "B")
    assert first_difference("a\nb\n", "a\nb\nextra\n") == (3, None, "extra")
    assert first_difference("a\nb\n", "a\nb") == (2, "b\n", "b")  # the final newline is the whole difference

    def side(output: str | None) -> dict[str, Any]:
        probe = {"command": "x", "returncode": 0, "output": output, "truncated": False, "error": None}
        return {"recorded": True, "config": {"path": None, "sha256": None, "git": None},
                "machines": [{"label": "vm", "machine_id": None, "environment": None, "probes": {"x": probe}}]}

    assert differences(side(None), side("")) == []  # no output either way
    assert differences(side(None), side("v1\n")) == [
        {"what": "probe", "machine": "vm", "probe": "x", "field": "output", "a": None, "b": "v1", "line": 1}]
