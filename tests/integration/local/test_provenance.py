"""Which config ran (SPEC 17): ``run_started`` records the config's SHA-256 and, for a config inside a git work
tree, its commit, whether the tree is dirty, and its root -- through the real CLI and a real git."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cli_env, run_cli, write_config

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

CONFIG = """
    from parallux import goal
    goal.local(workspace={workspace!r}).run("true")
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@example.org", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def run_started(tmp_path: Path, config_dir: Path) -> dict[str, Any]:
    """The run_started record of a run of ``config_dir/config.py`` (HOME and the workspace outside it)."""
    done = run_cli(config_dir, "config.py", env=cli_env(tmp_path / "home"))
    assert done.returncode == 0, done.stderr
    path = next(line.split(": ", 1)[1] for line in done.stderr.splitlines() if line.strip().startswith("run log:"))
    return json.loads(Path(path.strip()).read_text().splitlines()[0])


def test_provenance_a_config_in_a_clean_then_dirty_work_tree(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    config = write_config(repo / "sub", CONFIG.format(workspace=str(tmp_path / "ws")))
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    started = run_started(tmp_path, repo / "sub")
    assert started["config_sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()
    assert started["git"] == {"commit": git(repo, "rev-parse", "HEAD"), "dirty": False,
                              "root": str(repo.resolve())}
    (repo / "notes.txt").write_text("an untracked file makes the tree dirty\n")
    assert run_started(tmp_path, repo / "sub")["git"]["dirty"] is True
    (repo / "notes.txt").unlink()
    config.write_text(config.read_text() + "# changed\n")  # a tracked change, to the config itself
    started = run_started(tmp_path, repo / "sub")
    assert started["git"]["dirty"] is True
    assert started["config_sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()


def test_provenance_a_repository_without_a_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    write_config(repo, CONFIG.format(workspace=str(tmp_path / "ws")))
    git(repo, "init", "-q")
    assert run_started(tmp_path, repo)["git"] == {"commit": None, "dirty": True, "root": str(repo.resolve())}


def test_provenance_a_config_outside_any_work_tree(tmp_path: Path) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    config = write_config(outside, CONFIG.format(workspace=str(tmp_path / "ws")))
    assert subprocess.run(["git", "-C", str(outside), "rev-parse"], capture_output=True).returncode != 0
    started = run_started(tmp_path, outside)
    assert started["git"] is None
    assert started["config_sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()
