#!/usr/bin/env python3
"""File transfers: parallux's put/get over its SSH runner against ``scp -O`` and ``rsync -a`` over the same
private loopback sshd (tests/sshd.py: OpenSSH, no SFTP subsystem), all in the same run.

What is measured
----------------
* ``1 GiB file``: one file of random bytes (``--size-mib``), to an empty destination.
* ``tree``: ``--files`` small files (default 10,000, 2-18 KiB of random bytes each, ~100 MiB in all) in 100
  directories, to an empty destination.
* ``tree again``: the same tree a second time, unchanged (rsync's no-change run against parallux's quick
  check); scp has no such mode and is not run.
* ``get 1 GiB``: the big file back (for information; no target).

parallux: ``runner.put()`` / ``runner.get()`` timed inside a config run by the real CLI (``python -m
parallux -q --no-log``), so the figure excludes the CLI's start-up and the SSH connection, which a
campaign pays once. scp and rsync: the whole command, timed from outside, so their figures include their
connection set-up (~0.1 s on loopback); the table shows it apart (``ssh true``). Before every run the
destination is removed and ``sync`` flushes dirty pages, so that no tool pays for the previous one's
writeback. Each tool runs ``--repeat`` times, interleaved; the table gives the best and the median, and the
best's ratio to the faster of scp and rsync (throughput: > 1 is faster).

Memory: the peak RSS (VmHWM) of the parallux process and of its remote launcher (the "remote" host is this
machine), read from /proc at the end of each parallux run, largest over the runs.

Targets (issue 12): put at least 0.8x the throughput of the faster of scp and rsync for the big file and for
the tree; the unchanged tree within 1.5x of rsync's no-change run; both processes under 100 MB.

    python bench/transfer.py [--size-mib 1024] [--files 10000] [--repeat 3] [--tmp DIR]

Needs rsync (Debian: ``apt-get install rsync``) and the OpenSSH server and client (``./scripts/setup``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.dispatch import compile_package  # noqa: E402
from tests.sshd import HOST_ALIAS, SSH, SshdServer, start_sshd  # noqa: E402

CONFIG = """\
import json, os, time
from parallux import goal

def peak_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

server = goal.ssh("server", host=goal.args["host"], workspace=goal.args["workspace"])
times = []
for step in goal.args["steps"].split(","):
    what, source, target = step.split("|")
    start = time.perf_counter()
    transfer = server.put(source, target) if what == "put" else server.get(source, target)
    times.append([time.perf_counter() - start, transfer.files_sent, transfer.files_skipped,
                  transfer.bytes_sent])
print(json.dumps({"times": times, "parallux_kib": peak_kib(os.getpid()),
                  "launcher_kib": peak_kib(server.facts["pid"])}))
"""


def make_big(path: Path, mib: int) -> None:
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))


def make_tree(root: Path, files: int) -> int:
    rng = random.Random(12)
    total = 0
    for index in range(files):
        directory = root / f"d{index % 100:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        size = rng.randrange(2048, 18 * 1024)
        (directory / f"f{index:05d}.bin").write_bytes(os.urandom(size))
        total += size
    return total


def clean(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    subprocess.run(["sync"], check=True)


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def parallux(srv: SshdServer, config: Path, workspace: Path, steps: list[str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "parallux", "-q", "--no-log", str(config), "--",
                           f"host={HOST_ALIAS}", f"workspace={workspace}", "steps=" + ",".join(steps)],
                          env=srv.client_env(), capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SystemExit(f"parallux failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tmp", type=Path, default=None, help="where the data goes (default: a temp dir)")
    options = parser.parse_args()
    if shutil.which("rsync") is None:
        raise SystemExit("bench/transfer.py needs rsync: apt-get install rsync")
    compile_package(sys.executable)
    base = Path(tempfile.mkdtemp(prefix="parallux-transfer-", dir=options.tmp))
    srv = start_sshd(base / "sshd")
    try:
        run(srv, base, options)
    finally:
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)


def run(srv: SshdServer, base: Path, options: argparse.Namespace) -> None:
    env = srv.client_env()
    big, tree, dest = base / "big.bin", base / "tree", base / "dest"
    make_big(big, options.size_mib)
    tree_bytes = make_tree(tree, options.files)
    dest.mkdir()
    config = base / "transfer_config.py"
    config.write_text(CONFIG)
    ssh = ["-F", str(srv.ssh_config)]
    scp = ["scp", "-O", "-q", *ssh]  # -O: the scp protocol (the server has no SFTP, which scp uses by default)
    rsync = ["rsync", "-a", "-e", f"{SSH} -F {srv.ssh_config}"]
    remote = f"{HOST_ALIAS}:{dest}"
    results: dict[tuple[str, str], list[float]] = {}
    peaks = {"parallux": 0, "launcher": 0}

    def record(tool: str, what: str, seconds: float) -> None:
        results.setdefault((what, tool), []).append(seconds)

    for round_ in range(options.repeat):
        print(f"round {round_ + 1} of {options.repeat}", file=sys.stderr)
        record("ssh true", "connect", timed([SSH, *ssh, HOST_ALIAS, "true"], env))
        for what, source, target, tools in (
                ("1 GiB file", big, dest / "big.bin", ("scp", "rsync", "parallux")),
                ("tree", tree, dest / "tree", ("scp", "rsync", "parallux"))):
            for tool in tools:
                clean(target)
                if tool == "scp":
                    record(tool, what, timed([*scp, *(["-r"] if source.is_dir() else []), str(source),
                                              f"{remote}/{target.name}"], env))
                elif tool == "rsync":
                    slash = "/" if source.is_dir() else ""
                    record(tool, what, timed([*rsync, f"{source}{slash}", f"{remote}/{target.name}{slash}"],
                                             env))
                    if source.is_dir():
                        record(tool, "tree again", timed([*rsync, f"{source}/", f"{remote}/{target.name}/"],
                                                         env))
                else:
                    steps = [f"put|{source}|{target}"] + ([f"put|{source}|{target}"] if source.is_dir() else [])
                    figures = parallux(srv, config, dest, steps)
                    record(tool, what, figures["times"][0][0])  # type: ignore[index]
                    if source.is_dir():
                        record(tool, "tree again", figures["times"][1][0])  # type: ignore[index]
                        assert figures["times"][1][1] == 0, figures  # type: ignore[index]  # nothing resent
                    peaks["parallux"] = max(peaks["parallux"], figures["parallux_kib"])  # type: ignore[arg-type]
                    peaks["launcher"] = max(peaks["launcher"], figures["launcher_kib"])  # type: ignore[arg-type]
        back = base / "back.bin"
        for tool in ("scp", "rsync", "parallux"):
            clean(back)
            if tool == "scp":
                record(tool, "get 1 GiB", timed([*scp, f"{remote}/big.bin", str(back)], env))
            elif tool == "rsync":
                record(tool, "get 1 GiB", timed([*rsync, f"{remote}/big.bin", str(back)], env))
            else:
                figures = parallux(srv, config, dest, [f"get|{dest / 'big.bin'}|{back}"])
                record(tool, "get 1 GiB", figures["times"][0][0])  # type: ignore[index]
        clean(back)
    report(results, options.size_mib << 20, tree_bytes, options.files, peaks)


def report(results: dict[tuple[str, str], list[float]], big_bytes: int, tree_bytes: int, files: int,
           peaks: dict[str, int]) -> None:
    sizes = {"1 GiB file": big_bytes, "tree": tree_bytes, "tree again": tree_bytes, "get 1 GiB": big_bytes}
    print(f"{'transfer':<12} {'tool':<9} {'best s':>8} {'median s':>9} {'MB/s':>8} {'vs best other':>14}")
    for what in ("connect", "1 GiB file", "tree", "tree again", "get 1 GiB"):
        others = [min(results[what, tool]) for tool in ("scp", "rsync") if (what, tool) in results]
        for tool in ("ssh true", "scp", "rsync", "parallux"):
            if (what, tool) not in results:
                continue
            times = results[what, tool]
            best = min(times)
            rate = f"{sizes[what] / best / 1e6:8.0f}" if what in sizes and what != "tree again" else f"{'':>8}"
            ratio = f"{min(others) / best:13.2f}x" if tool == "parallux" and others else ""
            print(f"{what:<12} {tool:<9} {best:8.3f} {statistics.median(times):9.3f} {rate} {ratio:>14}")
    print(f"tree: {files} files, {tree_bytes / 2**20:.0f} MiB. 'vs best other' is throughput: the faster of scp and "
          f"rsync's best time over parallux's (> 1: parallux is faster; 'tree again': rsync's over parallux's).")
    print(f"peak RSS: parallux {peaks['parallux'] / 1024:.0f} MiB, launcher {peaks['launcher'] / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
