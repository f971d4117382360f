"""Slurm runs that mostly wait for Slurm's clock: started with the session's first Slurm test, checked at the end.

A Slurm time limit is whole minutes and slurmctld checks the limits every 30 s (tests/slurm.py), so a test
that sees Slurm itself end an allocation waits 60-90 s, nearly all of it idle. Such a test carries
``@pytest.mark.slurm_clock(config, timeout=...)`` and asks for ``slurm_clock_run``. When the session's first
Slurm test starts (``clock_started``), each selected marked test's config starts running through the real
CLI (``python -m parallux config.py``, cwd and HOME a fresh directory, as ``tests/slurm_cli.run``) on a
three-node cluster of the run's own -- configured as ``slurm_cluster`` is, so the run sees the nodes and jobs
it would see alone, and no other test sees its jobs. The other tests run meanwhile; the marked tests are moved
to the end of the session (``clock_tests_last``, called by tests/conftest.py), where ``slurm_clock_run``
waits for the run (killed, and the test failed, ``timeout`` seconds after its start, as ``run()``'s
timeout) and hands it to the test. Only the start moved: the run, the cluster and Slurm's enforcement of its
clock are what the test had.

With pytest-xdist (``scripts/test``) one worker runs the whole Slurm layer (tests/conftest.py): that one
starts the runs, and the marked tests end its share.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import write_config
from tests.slurm import GPUS_PER_NODE, SlurmCluster, SlurmStartError, skip_without_slurm, start_slurm, unavailable
from tests.slurm_cli import env_of

MARK = "slurm_clock"

__all__ = ["ClockRun", "clock_started", "clock_tests_last", "slurm_clock", "slurm_clock_run"]


@dataclasses.dataclass
class ClockRun:
    """One marked test's run: the CLI on its own cluster, its output going to files in ``home``."""

    cluster: SlurmCluster
    home: Path  # the run's cwd and HOME, holding config.py
    process: subprocess.Popen[bytes]
    deadline: float  # time.monotonic() past which the run is killed

    def result(self) -> subprocess.CompletedProcess[str]:
        """Wait for the run to end (up to its deadline) and return it as ``run()`` would."""
        try:
            self.process.wait(max(0.0, self.deadline - time.monotonic()))
            late = False
        except subprocess.TimeoutExpired:
            late = True
        if late:
            self.stop()
            pytest.fail(f"the run of {self.home / 'config.py'} did not end within its timeout:\n"
                        + self.output("stderr"), pytrace=False)
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, self.output("stdout"),
                                           self.output("stderr"))

    def output(self, name: str) -> str:
        return (self.home / f"{name}.txt").read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _start(cluster: SlurmCluster, home: Path, mark: pytest.Mark) -> ClockRun:
    write_config(home, mark.args[0])
    with open(home / "stdout.txt", "wb") as out, open(home / "stderr.txt", "wb") as err:
        # files, not pipes: nobody reads the output while the session goes on, and a full pipe would stop the run
        process = subprocess.Popen([sys.executable, "-m", "parallux", "config.py"], cwd=home, stdout=out,
                                   stderr=err, stdin=subprocess.DEVNULL, env=env_of(cluster, home))
    return ClockRun(cluster, home, process, time.monotonic() + mark.kwargs.get("timeout", 120))


def clock_tests_last(items: list[pytest.Item]) -> None:
    """The marked tests go to the end of the session (in their order): their runs had it all to run in."""
    items.sort(key=lambda item: item.get_closest_marker(MARK) is not None)


@pytest.fixture(scope="session")
def slurm_clock(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ClockRun | Exception]]:
    """Each selected marked test's run, started (or why its cluster did not start): asked for by the session's
    first Slurm test (``clock_started``)."""
    marked = [item for item in request.session.items if item.get_closest_marker(MARK)]
    if not marked or unavailable():  # (slurm_clock_run skips those tests as slurm_cluster does)
        yield {}
        return
    runs: dict[str, ClockRun | Exception] = {}
    clusters = []
    try:
        for item in marked:
            try:
                cluster = start_slurm(tmp_path_factory.mktemp("slurm-clock"), name="plxclock", gpus=GPUS_PER_NODE)
            except SlurmStartError as e:  # the test fails, not the session's first test
                runs[item.nodeid] = e
                continue
            clusters.append(cluster)
            runs[item.nodeid] = _start(cluster, tmp_path_factory.mktemp("clock-run"), item.get_closest_marker(MARK))
        yield runs
    finally:
        for run in runs.values():
            if isinstance(run, ClockRun):
                run.stop()
        for cluster in clusters:
            cluster.stop()


@pytest.fixture(autouse=True)
def clock_started(request: pytest.FixtureRequest) -> None:
    """The session's first Slurm test starts the marked tests' runs (on the worker that runs the Slurm layer)."""
    if request.node.get_closest_marker("slurm") is not None:
        request.getfixturevalue("slurm_clock")


@pytest.fixture
def slurm_clock_run(request: pytest.FixtureRequest, slurm_clock: dict[str, ClockRun | Exception]) -> ClockRun:
    """This test's run (its ``@pytest.mark.slurm_clock``), started with the session's first Slurm test."""
    skip_without_slurm()
    run = slurm_clock.get(request.node.nodeid)
    if run is None:
        pytest.fail(f"{request.node.nodeid} asks for slurm_clock_run without @pytest.mark.{MARK}(config)",
                    pytrace=False)
    if isinstance(run, Exception):
        raise run
    return run
