"""A run log with the machine records parallux writes (facts, probes, noise, config), as the views read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.synthetic import add_environment, machine_environment, write_benchmark_log

SHA_A = "0123abcd" + "0" * 56


COMMIT_A = "1a2b3c4d" + "5" * 32


GCC_A = "gcc (Debian 12.2.0-14) 12.2.0\nCopyright (C) 2022 Free Software Foundation, Inc.\n"


NOISE = "machine vm: CPU frequency governor powersave on CPUs 0-1 (not performance): frequencies vary"


def benchmarks() -> list[dict[str, Any]]:
    return [{"key": "mm", "name": "mm", "wall": [1.0, 1.1, 1.2]},
            {"key": "fft", "name": "fft", "wall": [2.0, 2.1, 2.2]}]


def recorded_log(path: Path, run_id: str = "20240301-101500-aaaaaa", gcc: str = GCC_A, sha: str = SHA_A,
                 commit: str | None = COMMIT_A, dirty: bool = True, load_end: list[float] | None = None,
                 node: str = "n1", **environment: Any) -> Path:
    """A run of two machines: ``vm`` (runners local and srv, a probe gcc, a noise finding) and ``node``
    (little known about it, its probe could not run)."""
    write_benchmark_log(path, benchmarks(), run_id=run_id)
    machines = [{"label": "vm", "runners": ["local", "srv"], "environment": machine_environment(**environment),
                 "load_end": load_end or [1.5, 0.8, 0.4]},
                {"label": node, "runners": [f"slurm@{node}"], "load_end": None,
                 "environment": machine_environment(hostname=node, cpu_model=None, sockets=None,
                                                    cores_per_socket=None, threads_per_core=None, governors=None,
                                                    min_khz=None, max_khz=None, turbo=None, load=None)}]
    probes = [{"name": "gcc", "command": "gcc --version", "machine": "vm", "output": gcc},
              {"name": "gcc", "command": "gcc --version", "machine": node, "runner": f"slurm@{node}",
               "returncode": None, "output": "", "error": "sh: gcc: not found"}]
    add_environment(path, machines, probes, [{"machine": "vm", "check": "governor", "message": NOISE}],
                    config_sha256=sha, git={"commit": commit, "dirty": dirty, "root": "/home/perf"})
    return path
