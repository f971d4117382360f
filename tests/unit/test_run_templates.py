"""Run templates (``_engine._request``, ``_launcher.RunTemplates``): a command's templated request stands for
exactly the full request it replaces -- whatever it runs with: a lease, a benchmark's repetition, a retry's
earlier attempts, inputs, its own variables, metrics, a memory limit, a work path of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parallux._engine import _request
from parallux._launcher import RunTemplates
from tests.plan_engine import Run


def requests_of(tmp_path: Path) -> list[dict[str, Any]]:
    """The run requests a small campaign's launcher is given, as it sees them (expanded)."""
    seen: list[dict[str, Any]] = []
    attempts: dict[str, int] = {}

    def outcome(request: dict[str, Any]) -> tuple[float, str, int]:
        mark = request["mark"].split("@")[0] + "." + request["mark"].split(".", 1)[1]  # (less its seat's number)
        # (an earlier attempt's times are the virtual clock's, which jumps while the config registers: they
        # differ from one run to the next)
        earlier = [dict(attempt, start=None, end=None) for attempt in request["record"]["attempts_before"]]
        seen.append({key: value for key, value in request.items() if key != "id"}
                    | {"mark": mark, "record": request["record"] | {"attempts_before": earlier}})
        name = request["record"]["name"]
        attempts[name] = attempts.get(name, 0) + 1
        return (1.0, "failed", 1) if name == "flaky" and attempts[name] == 1 else (1.0, "ok", 0)

    tmp_path.mkdir()
    (tmp_path / "input.txt").write_text("data")
    run = Run(outcome)
    try:
        goal = run.goal
        goal.setRunner(goal.local(name="pool", core_pool=[0, 1, 2, 3], max_jobs=2, env={"R": "1"}))
        goal.setEnv("G", "2")
        for index in range(3):
            goal.schd(f"plain {index}", work_relpath=f"plain/{index}")
        goal.schd("pinned", threads=2, name="pinned")
        goal.schd("flaky", name="flaky", retries=1)
        goal.schd("bench", name="bench", repeat=2, warmup=1)
        goal.schd("inputs", name="inputs", inputs=[str(tmp_path / "input.txt")])
        goal.schd("own env", env={"OWN": "x"}, metrics={"n": r"n=(\d+)"}, memory="64M", cwd="/tmp")
        goal.schd("generated")
        goal.issue().sync()
    finally:
        run.close()
    return sorted(seen, key=lambda request: (request["mark"], request["record"]["name"]))


def test_a_templated_request_is_the_full_request_it_stands_for(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    expanded = []
    expand = RunTemplates.expand
    monkeypatch.setattr(RunTemplates, "expand", lambda self, request: expanded.append(request) or expand(self, request))
    templated = requests_of(tmp_path / "a")
    assert len(expanded) == 12 and all("env" not in request for request in expanded)  # (templated)
    monkeypatch.setattr(_request, "TEMPLATES_PER_LAUNCHER", 0)  # (every request whole, as before templates)
    whole = requests_of(tmp_path / "b")
    assert len(templated) == len(whole) == 12
    for one, other in zip(templated, whole):
        one["record"].pop("inputs", None), other["record"].pop("inputs", None)  # (fingerprints of another dir)
        assert one == other
    assert any(request["record"]["cores"] for request in whole)  # (the cases it should cover are there)
    assert any(request["record"]["attempts_before"] for request in whole)
    assert any("PARALLUX_REPETITION" in request["env"] for request in whole)
