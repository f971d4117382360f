"""Shared pytest fixtures, and every test's layer (tests/layers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.layers import LAYERS, NoProcesses, directory_layer, layer_errors, placed, strays, unmarked
from tests.slurm import slurm_cluster, slurm_lenient  # noqa: F401
from tests.slurm_clock import clock_started, clock_tests_last, slurm_clock, slurm_clock_run  # noqa: F401
from tests.sshd import sshd_bare, sshd_server  # noqa: F401

SLURM_LAYER = "tests/integration/slurm/"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test's layer marks, from its directory (and what a case runs against: tests/layers.py)."""
    errors: list[str] = []
    cases: dict[tuple[Path, str], list[tuple[str, set[str]]]] = {}
    for item in items:
        callspec = getattr(item, "callspec", None)
        directory = directory_layer(item.path)
        layers = placed(directory, (mark.name for mark in item.iter_markers()), item.fixturenames,
                        callspec.params.values() if callspec else ())
        errors += layer_errors(item.nodeid, directory, layers)
        cases.setdefault((item.path, getattr(item, "originalname", item.name)), []).append((item.nodeid, layers))
        for layer in sorted(layers):
            item.add_marker(layer)
    errors += strays(cases)
    if errors:
        raise pytest.UsageError("every test is unit or integration, as its directory says (tests/layers.py):\n  "
                                + "\n  ".join(dict.fromkeys(errors)))
    clock_tests_last(items)  # their Slurm runs started with the first Slurm test (tests/slurm_clock.py)


@pytest.hookimpl(optionalhook=True)  # (a hook of pytest-xdist)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``-n 2 --dist loadfile`` (scripts/test): each file is one worker's in one go (its module-scoped fixtures
    -- Chromium, a real run to read -- made once), and so is the whole Slurm layer, whatever its files (one
    cluster a session, and the runs of tests/slurm_clock.py started once), handed out first: those runs, the
    longest waits of the suite, start at once."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class LayerScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return SLURM_LAYER if nodeid.startswith(SLURM_LAYER) else super()._split_scope(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            if SLURM_LAYER in self.workqueue:
                self.workqueue.move_to_end(SLURM_LAYER, last=False)
            super()._assign_work_unit(node)

    return LayerScheduling(config, log)


@pytest.fixture(autouse=True)
def no_processes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[NoProcesses | None]:
    """A unit test that starts a process fails: it belongs to the integration layer."""
    if request.node.get_closest_marker("unit") is None:
        yield None
        return
    guard = NoProcesses(monkeypatch, request.node.nodeid)
    yield guard
    if guard.started:
        pytest.fail(f"a unit test started a process ({', '.join(guard.started)}): move it to "
                    f"tests/integration/<layer>/ (tests/layers.py)", pytrace=False)


@pytest.fixture(autouse=True)
def layer_kept(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that asked for the sshd or Slurm by name (not seen at collection) carries that layer's mark."""
    yield
    errors = unmarked(request.node.nodeid, request.fixturenames,
                      {mark.name for mark in request.node.iter_markers()} & set(LAYERS))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)
