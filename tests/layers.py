"""Which layer each test belongs to (issue 22, "tests by layer"), and the guard that keeps unit tests honest.

A test's directory is its layer. ``tests/unit/``: in-process -- doubles, the plan transport, Trio's autojump
clock; no process started. ``tests/integration/<layer>/``: real processes, by what they run against:
``local`` (the real CLI or launcher as processes on this machine), ``ssh`` (the test sshd), ``slurm`` (the
test Slurm), ``browser`` (a real Chromium). ``tests/`` itself holds the shared helpers and fixtures, no test.

One test case may run against more than its directory says: a fixture it requests (the sshd's or Slurm's, see
``FIXTURES``), a parameter whose value is ``"ssh"`` or an integration mark (``pytest.param(...,
marks=pytest.mark.ssh)``) gives that case that layer instead -- so the SSH case of a test run on a local and
an SSH runner lives in ``integration/local/`` and is marked ``ssh``. Each test still has a case of its
directory's layer, and a unit test has none of these.

Anything else is an error at collection, saying where the test goes: a test file outside these directories
(a new file goes straight into its layer's directory; one whose tests are of several layers is split, one
file per layer), or a test in the wrong one. A unit test that starts a process fails (``NoProcesses``), so a
misplaced test cannot hide in the fast layer; tests/unit/test_layout.py checks what each unit test names.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

INTEGRATION = ("local", "ssh", "slurm", "browser")
LAYERS = ("unit", "integration", *INTEGRATION)
TESTS = Path(__file__).resolve().parent
WHERE = f"tests/unit/ or tests/integration/<{'|'.join(INTEGRATION)}>/"

# what requesting one of these fixtures makes a test an integration test against
FIXTURES = {"sshd_server": "ssh", "sshd_bare": "ssh", "ssh_client_home": "ssh",
            "slurm_cluster": "slurm", "slurm_lenient": "slurm", "slurm_clock_run": "slurm"}


def directory_layer(path: Path) -> str | None:
    """The layer a test file's directory says: ``unit`` in tests/unit/, ``local``, ``ssh``, ``slurm`` or
    ``browser`` in tests/integration/<that>/; None anywhere else."""
    try:
        parts = Path(path).resolve().relative_to(TESTS).parts
    except ValueError:
        return None
    if len(parts) == 2 and parts[0] == "unit":
        return "unit"
    if len(parts) == 3 and parts[0] == "integration" and parts[1] in INTEGRATION:
        return parts[1]
    return None


def placed(directory: str | None, marks: Iterable[str], fixtures: Iterable[str], params: Iterable[Any]) -> set[str]:
    """The layer marks of one test case: ``{"unit"}``, or ``"integration"`` with what it runs against (empty
    outside the layers' directories)."""
    if directory is None:
        return set()
    found = set(marks) & set(INTEGRATION)
    found |= {FIXTURES[name] for name in fixtures if name in FIXTURES}
    found |= {"ssh" for value in params if value == "ssh"}
    if directory == "unit":
        return {"unit", "integration", *found} if found else {"unit"}
    return {"integration", *(found or {directory})}


def layer_errors(nodeid: str, directory: str | None, layers: set[str]) -> list[str]:
    if directory is None:
        return [f"{nodeid.split('::')[0]}: a test file lies in {WHERE}, whose name is its layer "
                f"(tests/layers.py): move it there with git mv, or split it, one file per layer"]
    if "unit" in layers and "integration" in layers:
        against = sorted(layers & set(INTEGRATION))
        return [f"{nodeid}: in tests/unit/ but runs against {', '.join(against)}: move it to "
                f"tests/integration/{against[0]}/"]
    return []


def strays(cases: dict[tuple[Path, str], list[tuple[str, set[str]]]]) -> list[str]:
    """The tests of tests/integration/<layer>/ none of whose cases is of that layer (``cases``: each test's
    node ids and layers, by file and function)."""
    errors = []
    for (path, _), found in cases.items():
        directory = directory_layer(path)
        if directory in INTEGRATION and not any(directory in layers for _, layers in found):
            against = sorted(set().union(*(layers for _, layers in found)) & set(INTEGRATION))
            errors.append(f"{found[0][0]}: in tests/integration/{directory}/ but runs against "
                          f"{', '.join(against)} only: move it to tests/integration/{against[0]}/")
    return errors


def unmarked(nodeid: str, fixtures: Iterable[str], layers: set[str]) -> list[str]:
    """After a test ran: the SSH or Slurm fixture it used (``request.getfixturevalue`` included) must be its
    layer -- collection only sees the fixtures a test names."""
    return [f"{nodeid} used {name} but is not marked {FIXTURES[name]}: give that case the mark (a parameter "
            f'"{FIXTURES[name]}", or pytest.param(..., marks=pytest.mark.{FIXTURES[name]}))'
            for name in fixtures if name in FIXTURES and FIXTURES[name] not in layers]


class StartedAProcess(AssertionError):
    pass


class NoProcesses:
    """Installed around each unit test: every way Python starts a process raises, and is remembered (so a
    refusal swallowed in a worker thread still fails the test)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, nodeid: str) -> None:
        self.nodeid = nodeid
        self.started: list[str] = []
        monkeypatch.setattr(subprocess.Popen, "_execute_child", self.refusing("subprocess"))
        for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "execv", "execve"):
            monkeypatch.setattr(os, name, self.refusing(f"os.{name}"))

    def refusing(self, how: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            self.started.append(how)
            raise StartedAProcess(f"{self.nodeid} is a unit test but started a process ({how}): move it to "
                                  f"tests/integration/<layer>/ (tests/layers.py) or use a double")
        return refuse
