"""scripts/slurm-sandbox, for real: it starts the test suite's private Slurm, prints the export lines a second
shell needs, and on Ctrl-C (or SIGTERM) stops every daemon it started -- checked by the pids it printed.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from parallux._launcher import process_start
from tests.helpers import REPO, pids_with_arg, run_cli, write_config
from tests.slurm import missing_binaries

SANDBOX = REPO / "scripts" / "slurm-sandbox"
START_WAIT = 180.0  # seconds for the daemons to come up on a busy 2-core machine

pytestmark = [
    pytest.mark.skipif(bool(missing_binaries()), reason="Slurm is not installed: run ./scripts/setup"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox runs the Slurm daemons as root"),
]


class Sandbox:
    """The script in the background, its stdout read line by line."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([str(SANDBOX)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.err: list[str] = []
        # Both pipes are read by threads of their own, and only by them: communicate() beside a reader
        # thread closed the pipe under it (ValueError: I/O operation on closed file).
        self.readers = [threading.Thread(target=self._read, daemon=True),
                        threading.Thread(target=self._read_err, daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.err.extend(self.proc.stderr)

    def _wait(self) -> None:
        self.proc.wait(timeout=120)
        for reader in self.readers:
            reader.join(timeout=30)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None and not any(reader.is_alive() for reader in self.readers):
                pipe.close()

    def wait_for_exports(self) -> dict[str, str]:
        exports = {}
        while len(exports) < 2:
            try:
                line = self.lines.get(timeout=START_WAIT)
            except queue.Empty:
                raise AssertionError(f"no export lines after {START_WAIT:.0f} s: {self.seen}") from None
            if line is None:
                self._wait()
                raise AssertionError(f"the sandbox ended: {self.seen} {''.join(self.err)}")
            self.seen.append(line)
            if line.startswith("export "):
                name, _, value = line[len("export "):].partition("=")
                exports[name] = value
        return exports

    def daemons(self) -> dict[int, int | None]:
        """pid -> its start time, for every daemon the sandbox said it started."""
        started = next(line for line in self.seen if line.startswith("slurm-sandbox: started "))
        pids = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", started)]
        return {pid: process_start(pid) for pid in pids}

    def stop(self, signum: int) -> tuple[int, str]:
        self.proc.send_signal(signum)
        self._wait()
        return self.proc.returncode, "".join(self.err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self._wait()


def client_env(exports: dict[str, str], home: Path) -> dict[str, str]:
    """A second shell's environment: its own, with the export lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "PYTHONPATH"}
    return dict(env, HOME=str(home), **exports)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_slurm_sandbox_serves_a_second_shell_and_stops_all_it_started(tmp_path: Path, signum: int) -> None:
    sandbox = Sandbox()
    try:
        exports = sandbox.wait_for_exports()
        assert set(exports) == {"SLURM_CONF", "SBATCH_OUTPUT"}
        directory = str(Path(exports["SLURM_CONF"]).parent)
        daemons = sandbox.daemons()
        assert len(daemons) == 5 and None not in daemons.values()  # munged, slurmctld, 3 slurmds
        env = client_env(exports, tmp_path)

        nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], env=env, capture_output=True, text=True,
                               timeout=60, check=True).stdout.split("\n")
        assert sorted(line.split()[0] for line in nodes if line.strip()) == ["n1", "n1", "n2", "n3"]  # 2 partitions
        if signum == signal.SIGINT:  # the Slurm runner, as a user tries it
            write_config(tmp_path, """
                from parallux import goal
                goal.setRunner(goal.slurm("sandbox", nodes=2, workspace="ws"))
                for i in range(2):
                    goal.schd("echo $PARALLUX_NODE", work_relpath=f"c{i}")
            """)
            done = run_cli(tmp_path, "config.py", env=env, timeout=180)
            assert done.returncode == 0, done.stderr
            assert {(tmp_path / "ws" / f"c{i}" / "stdout.txt").read_text().strip() for i in range(2)} <= \
                {"n1", "n2"}

        status, err = sandbox.stop(signum)
    finally:
        sandbox.kill()

    assert status == 0, err
    assert all(process_start(pid) != start for pid, start in daemons.items())  # gone (or a new process)
    assert pids_with_arg(directory) == []
    assert not os.path.exists(directory)
