"""Where parallux keeps its state on this machine: the history of runs, one directory per config.

The run log (``_runlog``) writes this layout and the views (``_views``) read it; both take it from here, so
neither imports the other::

    $XDG_STATE_HOME/parallux/runs/        (~/.local/state when XDG_STATE_HOME is unset)
        latest.jsonl                  -> <config key>/<run id>.jsonl: the newest run that started commands
        <config key>/                 one directory per config path (``campaign-1a2b3c4d``)
            <run id>.jsonl            a run's log (or, with --log FILE, a symlink to FILE)
            latest.jsonl              -> the config's newest run that started commands
"""

from __future__ import annotations

import hashlib
import os
import re

LATEST = "latest.jsonl"


def state_dir() -> str:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "parallux")


def default_log_dir() -> str:
    """The directory that holds every config's run history."""
    return os.path.join(state_dir(), "runs")


def config_key(config: str) -> str:
    """The directory name of a config's history: readable (the file's stem) and unique (a hash of its path)."""
    path = os.path.abspath(config)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.splitext(os.path.basename(path))[0])[:40] or "config"
    return f"{stem}-{hashlib.sha1(path.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def config_dir(config: str, root: str | None = None) -> str:
    return os.path.join(root or default_log_dir(), config_key(config))
