#!/usr/bin/env python3
"""SSH dispatch overhead: parallux's SSH runner against ``ssh`` per command, ``ssh`` with ControlMaster, and
parallux's local runner, all measured in the same run against a private loopback sshd.

What is measured
----------------
Wall time, seen from outside, to run N trivial commands (``true``, default 500) with at most P at once
(default 4), each command getting its own directory holding its stdout and stderr:

* ``parallux ssh`` -- the real CLI (``python -m parallux -q CONFIG``) on a config with one SSH runner
  (``max_jobs=P``) and N ``goal.schd("true", work_relpath=I)``. Includes the CLI's start-up, the SSH
  connection and the launcher's bootstrap: everything a user waits for.
* ``parallux local`` -- the same config with a local runner instead; the reference for the 1.5x target.
* ``ssh per command`` -- ``seq N | xargs -P P -I{} ssh -F CONFIG HOST 'mkdir -p WS/{} && cd WS/{} && true
  >stdout.txt 2>stderr.txt'``: one SSH connection, one login and one login shell per command.
* ``ssh ControlMaster`` -- the same through one master connection (``-o ControlPath=...``) opened before the
  clock starts: no handshake per command, but still one session and one login shell per command.

Each tool runs ``--repeat`` times, interleaved, into fresh directories; the table gives the best and the
median seconds and ``best / parallux local best``. The whole set runs twice: with a *bare* login shell (the
test sshd's ``PermitUserEnvironment`` + ``environment="HOME=<empty dir>"`` in authorized_keys, so the shell
reads no dotfiles) and with the *real* login shell of the current user (its ``~/.bashrc`` runs whatever it
runs, e.g. ``pyenv init``).

The sshd is OpenSSH's, started by ``tests/sshd.py`` on 127.0.0.1 with its own keys and config in a temp dir
and stopped by its pid; the machine's own sshd and ``~/.ssh`` are never used. The "remote" host is this
machine, so every figure also contains the commands' own cost on the same CPUs.

The parallux config also reports, inside itself, how long creating the runner took (for SSH: importing
asyncssh, connecting, starting the remote launcher) and how long the commands took from then on; the table's
last lines give their medians and the dispatch-only ratio, which shows the per-command cost of the SSH
transport apart from its fixed cost.

Targets (issue 4): parallux ssh within 1.5x of parallux local in both shells, and at least 10x faster than
ssh ControlMaster with the real login shell; (issue 24) at most 0.5x of ssh ControlMaster's time.

    python bench/ssh_dispatch.py [--n 500] [--p 4] [--repeat 3] [--tmp DIR] [--parallux PATH]
    python bench/ssh_dispatch.py --shells bare --n 2000 --p 8 --skip per-command   # issue 24's figure

``--parallux PATH`` runs another checkout's or installation's ``parallux`` executable (to compare two
versions on one machine) instead of ``python -m parallux`` with the interpreter running this script.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.dispatch import compile_package, interpreter_of  # noqa: E402
from tests.sshd import HOST_ALIAS, SSH, SshdServer, start_sshd  # noqa: E402

CONFIG = """\
import time
from parallux import goal
n, p, ws = int(goal.args["n"]), int(goal.args["p"]), goal.args["ws"]
started = time.perf_counter()
if goal.args["runner"] == "ssh":
    runner = goal.ssh("server", host=goal.args["host"], workspace=ws, max_jobs=p)
else:
    runner = goal.local(workspace=ws, max_jobs=p)
ready = time.perf_counter()
goal.setRunner(runner)
for index in range(n):
    goal.schd("true", work_relpath=str(index))
goal.issue().sync()
print(f"PHASES {ready - started:.6f} {time.perf_counter() - ready:.6f}")
"""


@dataclass
class Tool:
    name: str
    argv: list[str]          # "{ws}" is replaced by a fresh directory for each run
    output: str              # the file each command leaves in its directory, to check the run did its work
    seconds: list[float] = field(default_factory=list)
    connect: list[float] = field(default_factory=list)   # parallux only: goal.ssh()/goal.local() in the config
    dispatch: list[float] = field(default_factory=list)  # parallux only: from the runner ready to sync() done


def remote_snippet() -> str:
    """ssh joins its arguments with spaces and the remote login shell parses them: one plain string."""
    return "mkdir -p {ws}/{} && cd {ws}/{} && true >stdout.txt 2>stderr.txt"


def tools(srv: SshdServer, config: Path, control_path: Path, n: int, p: int,
          executable: list[str], skip: list[str]) -> list[Tool]:
    parallux = [*executable, "-q", str(config), "--", f"n={n}", f"p={p}", "ws={ws}"]
    xargs = ["xargs", "-P", str(p), "-I{}"]
    ssh = [SSH, "-F", str(srv.ssh_config)]
    return [
        Tool("parallux local", parallux + ["runner=local"], "result.json"),
        Tool("parallux ssh", parallux + ["runner=ssh", f"host={HOST_ALIAS}"], "result.json"),
        Tool("ssh ControlMaster", xargs + ssh + ["-o", "ControlMaster=no", "-o", f"ControlPath={control_path}",
                                                 HOST_ALIAS, remote_snippet()], "stdout.txt"),
        Tool("ssh per command", xargs + ssh + [HOST_ALIAS, remote_snippet()], "stdout.txt"),
    ][:3 if "per-command" in skip else 4]


def measure(tool: Tool, srv: SshdServer, workspace: Path, n: int) -> float:
    argv = [arg.replace("{ws}", str(workspace)) for arg in tool.argv]
    stdin = "".join(f"{i}\n" for i in range(n)).encode()
    subprocess.run(["sync"], check=False)
    started = time.perf_counter()
    done = subprocess.run(argv, input=stdin, env=srv.client_env(), capture_output=True, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{tool.name} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    made = sum(1 for _ in workspace.glob(f"*/{tool.output}"))
    if made != n:
        raise SystemExit(f"{tool.name}: {made} of {n} commands left their {tool.output}")
    for line in done.stdout.decode(errors="replace").splitlines():
        if line.startswith("PHASES "):
            connect, dispatch = line.split()[1:3]
            tool.connect.append(float(connect))
            tool.dispatch.append(float(dispatch))
    return seconds


def open_master(srv: SshdServer, control_path: Path) -> subprocess.Popen[bytes]:
    """The ControlMaster connection, opened before any clock starts; stopped by its pid at the end."""
    master = subprocess.Popen([SSH, "-F", str(srv.ssh_config), "-o", "ControlMaster=yes", "-o",
                               f"ControlPath={control_path}", "-N", HOST_ALIAS], env=srv.client_env(),
                              stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not control_path.exists():
        if master.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the ControlMaster connection did not come up")
        time.sleep(0.05)
    return master


def bench_shell(label: str, srv: SshdServer, root: Path, args: argparse.Namespace) -> dict[str, Tool]:
    config = root / "bench_config.py"
    config.write_text(CONFIG)
    control_path = root / "cm.sock"
    master = open_master(srv, control_path)
    try:
        measured = tools(srv, config, control_path, args.n, args.p, parallux_command(args.parallux), args.skip)
        for attempt in range(args.repeat):
            for tool in measured:
                workspace = root / "runs" / f"{tool.name.replace(' ', '_')}-{attempt}"
                tool.seconds.append(measure(tool, srv, workspace, args.n))
                print(f"  [{label}] {tool.name:18s} run {attempt + 1}: {tool.seconds[-1]:7.2f} s", flush=True)
    finally:
        master.terminate()
        master.wait(10)
    return {tool.name: tool for tool in measured}


def parallux_command(executable: str | None) -> list[str]:
    """How to start parallux: the given executable, else ``python -m parallux`` with this interpreter."""
    return [executable] if executable else [sys.executable, "-m", "parallux"]


def report(label: str, results: dict[str, Tool], n: int, p: int) -> None:
    local = min(results["parallux local"].seconds)
    print(f"\n{label} login shell: {n} x true, P={p}")
    print(f"  {'tool':18s} {'best s':>8s} {'median s':>9s} {'cmd/s':>8s} {'/ local':>8s}")
    for tool in results.values():
        best = min(tool.seconds)
        print(f"  {tool.name:18s} {best:8.2f} {statistics.median(tool.seconds):9.2f} {n / best:8.0f} "
              f"{best / local:8.2f}")
    print("  inside the parallux config (median s): runner creation (SSH: import, connect, launcher start), "
          "then dispatch of the commands")
    for name in ("parallux local", "parallux ssh"):
        tool = results[name]
        print(f"  {name:18s} create {statistics.median(tool.connect):6.3f}  dispatch "
              f"{statistics.median(tool.dispatch):6.3f}")
    print(f"  dispatch only, ssh / local (medians): "
          f"{statistics.median(results['parallux ssh'].dispatch) / statistics.median(results['parallux local'].dispatch):.2f}")


def verdicts(by_shell: dict[str, dict[str, Tool]]) -> list[str]:
    lines = []
    for label, results in by_shell.items():
        ratio = min(results["parallux ssh"].seconds) / min(results["parallux local"].seconds)
        lines.append(f"{'PASS' if ratio <= 1.5 else 'FAIL'}  {label}: parallux ssh / local = {ratio:.2f} "
                     f"(target <= 1.5)")
    for label, results in by_shell.items():  # issue 24: at most half of ControlMaster's time
        ratio = min(results["parallux ssh"].seconds) / min(results["ssh ControlMaster"].seconds)
        lines.append(f"{'PASS' if ratio <= 0.5 else 'FAIL'}  {label}: parallux ssh / ssh ControlMaster = "
                     f"{ratio:.2f} (target <= 0.5)")
    if "real" in by_shell:
        results = by_shell["real"]
        speedup = min(results["ssh ControlMaster"].seconds) / min(results["parallux ssh"].seconds)
        lines.append(f"{'PASS' if speedup >= 10 else 'FAIL'}  real: ControlMaster / parallux ssh = "
                     f"{speedup:.1f}x (target >= 10x)")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="commands per run (default 500)")
    parser.add_argument("--p", type=int, default=4, help="commands at once (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool (default 3)")
    parser.add_argument("--tmp", default=None, help="where the sshd, configs and work dirs go")
    parser.add_argument("--shells", default="bare,real", help="bare, real or both (default bare,real)")
    parser.add_argument("--skip", type=lambda s: s.split(","), default=[],
                        help="per-command: leave out ssh per command (a connection each: minutes at N=2000)")
    parser.add_argument("--parallux", default=None,
                        help="the parallux executable to measure (default: python -m parallux with this "
                             "interpreter)")
    args = parser.parse_args()
    if args.parallux:
        args.parallux = os.path.abspath(args.parallux)
        print(f"parallux: {args.parallux}", flush=True)
    # the interpreter the runs below use (this one, or the executable's)
    compile_package(interpreter_of(args.parallux) if args.parallux else sys.executable)
    by_shell: dict[str, dict[str, Tool]] = {}
    with tempfile.TemporaryDirectory(prefix="parallux-ssh-bench-", dir=args.tmp) as tmp:
        for label in args.shells.split(","):
            root = Path(tmp) / label
            srv = start_sshd(root / "sshd", bare_login_shell=(label == "bare"))
            try:
                by_shell[label] = bench_shell(label, srv, root, args)
            finally:
                srv.stop()
    for label, results in by_shell.items():
        report(label, results, args.n, args.p)
    print()
    lines = verdicts(by_shell)
    print("\n".join(lines))
    return 0 if all(line.startswith("PASS") for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
