"""What a run records of an SSH runner's machine (SPEC 17, issue 21), through the real CLI against the test sshd:
its environment, its probes and its noise, read on the "remote" host (this machine, given a fake tree).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.environment_runs import FIELDS, HOST, events, first_attempt, log_of, position, tree, warnings_of
from tests.helpers import write_config
from tests.sshd import HOST_ALIAS, SshdServer


def test_environment_an_ssh_runners_machine_its_probe_and_its_noise(sshd_server: SshdServer, tmp_path: Path) -> None:
    root = tree(tmp_path / "m", "remote-boot", governor="powersave")
    write_config(tmp_path, f"""
        from parallux import goal
        server = goal.ssh("server", host=goal.args["host"], workspace={str(tmp_path / "ws")!r},
                          env={{"PARALLUX_MACHINE_ROOT": {str(root)!r}}})
        goal.setRunner([server])
        goal.probe("where", 'echo "$PARALLUX_RUNNER on $(hostname)"')
        goal.schd("true", repeat=2)
    """)
    done = subprocess.run([sys.executable, "-m", "parallux", "config.py", "--", f"host={HOST_ALIAS}"],
                          cwd=tmp_path, env=sshd_server.client_env(), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    log = log_of(done.stderr)
    [machine] = events(log, "machine")
    assert (machine["label"], machine["runners"], machine["boot_id"]) == (HOST, ["server"], "remote-boot")
    assert set(machine["environment"]) == FIELDS | {"parallux"}
    assert machine["environment"]["governors"] == {"powersave": [0, 1]}
    [probe] = events(log, "probe")
    assert (probe["runner"], probe["output"], probe["returncode"]) == ("server", f"server on {HOST}\n", 0)
    assert position(log, "probe") < first_attempt(log)
    assert [n["check"] for n in events(log, "noise")] == ["governor"] and len(warnings_of(done.stderr)) == 1
    assert len(events(log, "machine_load")) == 1
