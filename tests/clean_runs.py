"""``parallux clean`` and the run id of a run, through the real CLI (tests/helpers.py's run_cli).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import run_cli


def run_id_of(stderr: str) -> str:
    line = next(line for line in stderr.splitlines() if "run log: " in line)
    return Path(line.split("run log: ", 1)[1].split(" (")[0].strip()).stem


def clean(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = run_cli(home, "clean", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done
