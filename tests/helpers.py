"""Running the real parallux CLI on a config in a subprocess, and looking for processes a test started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent


def write_config(directory: Path, source: str, name: str = "config.py") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(home)
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def run_cli(cwd: Path, *args: str, timeout: float = 60, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    """``python -m parallux ARGS`` in ``cwd`` with HOME=cwd; output captured as text."""
    return subprocess.run([sys.executable, "-m", "parallux", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env or cli_env(cwd))


def start_cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "parallux", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or cli_env(cwd))


def new_token() -> str:
    return "ptest-" + uuid.uuid4().hex


def pids_with_env(token: str) -> list[int]:
    """Live (non-zombie) processes whose environment holds ``token`` (passed to commands via env=)."""
    needle = token.encode()
    return live_pids("environ", lambda environ: needle in environ)


def pids_with_arg(token: str, exact: bool = False) -> list[int]:
    """Live (non-zombie) processes with ``token`` in their command line (``exact``: as one whole argument) --
    found even when they cleared their environment (``env -i``), so unlike pids_with_env this sees every
    escapee."""
    needle = token.encode()
    return live_pids("cmdline", lambda argv: needle in (argv.split(b"\0") if exact else argv))


def live_pids(proc_file: str, matches: Callable[[bytes], bool]) -> list[int]:
    """Live (non-zombie) processes whose /proc/PID/<proc_file> matches."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/{proc_file}", "rb") as f:
                if not matches(f.read()):
                    continue
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            found.append(int(entry))
    return found


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that overlap at any instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    peak = current = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak

