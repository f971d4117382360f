"""Which config ran (SPEC 17): the SHA-256 of its bytes as run and, when it lives in a git work tree, that
tree's commit and whether anything in it differs from the commit -- what ``run_started`` records, so that
``parallux compare`` can say that run B ran another config.

Two ``git`` calls, once per run, in the config's directory: ``rev-parse --show-toplevel`` (the work tree, or
none) and ``status --porcelain=v2 --branch`` (the commit, ``(initial)`` before the first one, and every
tracked or untracked change). ``GIT_OPTIONAL_LOCKS=0`` keeps status from writing the index (a run must not
race the user's own git). No git, no work tree, or a git that refuses (a repository of another user): null.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from typing import Any

GIT_WAIT = 10.0  # seconds a git call may take before the run goes on without it


def config_sha256(source: bytes) -> str:
    return hashlib.sha256(source).hexdigest()


def git_state(config: str) -> dict[str, Any] | None:
    """``{"commit", "dirty", "root"}`` of the git work tree holding ``config``; None outside one."""
    directory = os.path.dirname(os.path.abspath(config))
    root = git(directory, "rev-parse", "--show-toplevel")
    if not root:
        return None
    status = git(root, "status", "--porcelain=v2", "--branch", "--untracked-files=normal")
    if status is None:
        return None
    lines = status.splitlines()
    oid = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    return {"commit": oid if oid and oid != "(initial)" else None,
            "dirty": any(not line.startswith("#") for line in lines if line), "root": root}


def git(directory: str, *args: str) -> str | None:
    """git's output, stripped; None when it fails or is not installed."""
    try:
        done = subprocess.run(["git", "-C", directory, *args], capture_output=True, timeout=GIT_WAIT,
                              stdin=subprocess.DEVNULL, env=dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C"))
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "surrogateescape").strip()
