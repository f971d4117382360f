"""Limits and whole-tree accounting on the cgroup per command: ``memory=``, status ``oom``, CPU time and peak
memory of the whole process tree (also of a tree killed by its timeout).

Through the real CLI, on a local runner and on an SSH runner of the test sshd (the same machine: this one
mounts cgroups hybrid, the memory controller is v1, so these run the v1 path for real). The v2 path is
played on a fake cgroup tree (``PARALLUX_CGROUP_ROOT``): the command itself plays the kernel, writing the
files a kernel would, and the launcher must read them as it reads a real v2 hierarchy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import cli_env, write_config
from tests.sshd import HOST_ALIAS

PY = sys.executable
KINDS = ["local", "ssh"]
MiB = 1 << 20

CHILD_HOG = "import time\nx = b'x' * (256 << 20)\ntime.sleep(600)\n"
# The hog's parent lives on after its child is killed: only a kill of the whole tree ends it before its timeout.
HOG = """import subprocess, sys, time
subprocess.run([sys.executable, sys.argv[1]])
time.sleep(600)
"""
FITS = f"{PY} -c \"x = b'x' * (8 << 20)\""  # 8 MB: well within 64 MiB
HOLDER = """import sys
x = b'x' * (100 << 20)
sys.stdout.write('r'); sys.stdout.flush()
sys.stdin.read()
"""
TWO_HOLDERS = """import subprocess, sys
children = [subprocess.Popen([sys.executable, sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            for _ in range(2)]
for child in children:  # both hold their 100 MB at once before either lets go
    assert child.stdout.read(1) == b'r'
for child in children:
    child.stdin.close()
    child.wait()
"""
# A busy loop in a child of the shell (not exec'd by it): killed by the timeout together with its shell,
# which never reaps it, so its CPU time is in no rusage the launcher sees. It notes its own CPU time as it goes.
BUSY = """import os, sys, time
out = sys.argv[1]
while True:
    for _ in range(200000):
        pass
    with open(out + '.tmp', 'w') as f:
        f.write(repr(time.process_time()))
    os.replace(out + '.tmp', out)
"""


class Cli:
    """The parallux CLI on a config with a runner ``r``: local, or SSH to the test sshd."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.srv = request.getfixturevalue("sshd_server") if kind == "ssh" else None

    def config(self, body: str) -> Path:
        workspace = repr(str(self.tmp_path / "ws"))
        runner = (f"r = goal.local(workspace={workspace})" if self.kind == "local" else
                  f"r = goal.ssh('server', host=goal.args['host'], workspace={workspace})")
        return write_config(self.tmp_path, "import json, sys\nfrom parallux import goal\n" + runner + "\n" + body)

    def run(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        base = self.srv.client_env() if self.srv is not None else cli_env(self.tmp_path)
        config_args = ["--", f"host={HOST_ALIAS}"] if args and args[0].endswith(".py") else []
        return subprocess.run([PY, "-m", "parallux", *args, *config_args], cwd=self.tmp_path, text=True,
                              capture_output=True, timeout=timeout, env={**base, **env}, stdin=subprocess.DEVNULL)


@pytest.fixture(params=KINDS)
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    return Cli(request.param, tmp_path, request)


def script(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def results_of(done: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    """What the config printed: one JSON line per result, ``{"name": ..., fields...}``."""
    found = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            found[record["name"]] = record
    return found


PRINT = ("def show(r):\n"
         "    print(json.dumps({k: getattr(r, k) for k in ('name', 'status', 'returncode', 'user_seconds',\n"
         "                      'system_seconds', 'max_rss_kb', 'attempt', 'duration')}), flush=True)\n")


# -- memory= and status oom -------------------------------------------------------------------------------------

def test_a_tree_over_its_memory_limit_ends_oom_and_every_view_names_it(cli: Cli) -> None:
    child = script(cli.tmp_path, "child.py", CHILD_HOG)
    hog = script(cli.tmp_path, "hog.py", HOG)
    config = cli.config(PRINT + f"""
hog = goal.run({f"{PY} {hog} {child}"!r}, name="hog", memory="64M", timeout=60, check=False)
fits = goal.run({FITS!r}, name="fits", memory=64 << 20, check=False)
show(hog.sync()); show(fits.sync())
""")
    done = cli.run(str(config))
    results = results_of(done)
    assert results["hog"]["status"] == "oom", done.stdout + done.stderr  # (not "timeout": killed by the limit)
    assert results["fits"]["status"] == "ok", done.stdout + done.stderr
    assert "oom (limit 64 MiB)" in done.stderr  # the summary names it, and the limit
    shown = cli.run("show", "--failed")
    assert "hog" in shown.stdout and "oom" in shown.stdout and "fits" not in shown.stdout, shown.stdout
    cli.run("report", "-o", "report.html")
    report = (cli.tmp_path / "report.html").read_text()
    data = json.loads(report.split('id="parallux-data">', 1)[1].split("</script>", 1)[0])
    rows = {row[1]: dict(zip(data["commands"]["fields"], row)) for row in data["commands"]["rows"]}
    assert (rows["hog"]["status"], rows["hog"]["memory_limit"]) == ("oom", 64 << 20)  # report.js names both
    junit = cli.run("export", "--junit", "-")
    assert 'type="oom"' in junit.stdout and "64 MiB" in junit.stdout, junit.stdout


def test_check_true_raises_naming_oom_and_the_limit(tmp_path: Path) -> None:
    child = script(tmp_path, "child.py", CHILD_HOG)
    hog = script(tmp_path, "hog.py", HOG)
    config = write_config(tmp_path, f"""
from parallux import goal, CommandFailed
goal.local(workspace="ws")
try:
    goal.run({f"{PY} {hog} {child}"!r}, name="hog", memory="64M", timeout=60).sync()
except CommandFailed as exc:
    print("raised:", type(exc).__name__, str(exc).splitlines()[0])
""")
    done = Cli("local", tmp_path, None).run(str(config))  # type: ignore[arg-type]
    assert "raised: CommandOutOfMemory" in done.stdout, done.stdout + done.stderr
    assert "oom" in done.stdout and "64 MiB" in done.stdout, done.stdout


def test_retry_on_oom_retries_it(tmp_path: Path) -> None:
    child = script(tmp_path, "child.py", CHILD_HOG)
    hog = script(tmp_path, "hog.py", HOG)
    config = write_config(tmp_path, "import json\nfrom parallux import goal\n" + PRINT + f"""
goal.local(workspace="ws")
show(goal.run({f"{PY} {hog} {child}"!r}, name="hog", memory="64M", timeout=60, check=False,
              retries=1, retry_on=["oom"]).sync())
""")
    done = Cli("local", tmp_path, None).run(str(config))  # type: ignore[arg-type]
    result = results_of(done)["hog"]
    assert (result["status"], result["attempt"]) == ("oom", 1), done.stdout + done.stderr
    assert "retrying 'hog' (oom)" in done.stderr


def test_memory_without_a_cgroup_is_a_config_error_before_anything_runs(tmp_path: Path) -> None:
    config = write_config(tmp_path, """
from parallux import goal
goal.local(workspace="ws")
goal.schd("touch ../../ran-anyway", name="innocent")
goal.schd("echo hi", memory="1G")
goal.issue()
""")
    done = Cli("local", tmp_path, None).run(str(config), PARALLUX_CGROUPS="0")  # type: ignore[arg-type]
    assert done.returncode == 2, done.stderr
    assert "memory=" in done.stderr and "local" in done.stderr, done.stderr
    assert "PARALLUX_CGROUPS=0" in done.stderr, done.stderr
    assert not (tmp_path / "ran-anyway").exists()


# -- whole-tree accounting -------------------------------------------------------------------------------------

def test_cpu_time_of_a_tree_killed_by_its_timeout_is_counted(cli: Cli) -> None:
    busy = script(cli.tmp_path, "busy.py", BUSY)
    own = cli.tmp_path / "own-cpu"
    config = cli.config(PRINT + f"""
show(goal.run({f"{PY} {busy} {own}; echo never reached"!r}, name="busy", timeout=2, check=False).sync())
""")
    done = cli.run(str(config))
    result = results_of(done)["busy"]
    assert result["status"] == "timeout", done.stdout + done.stderr
    loop_saw = float(own.read_text())  # the loop's own CPU time, the last time it noted it
    assert loop_saw > 0.3
    reported = result["user_seconds"] + result["system_seconds"]
    assert reported >= min(1.5, loop_saw), (reported, loop_saw)


def test_peak_memory_is_that_of_the_whole_tree(cli: Cli) -> None:
    holder = script(cli.tmp_path, "holder.py", HOLDER)
    two = script(cli.tmp_path, "two.py", TWO_HOLDERS)
    config = cli.config(PRINT + f"show(goal.run({f'{PY} {two} {holder}'!r}, name='two').sync())\n")
    done = cli.run(str(config))
    result = results_of(done)["two"]
    assert result["status"] == "ok", done.stdout + done.stderr
    assert result["max_rss_kb"] * 1024 >= 200_000_000, result


# -- the v2 path (and pure v1), on a fake hierarchy -------------------------------------------------------------

KERNEL = """import glob, os, signal, sys
version, oom, hierarchies = sys.argv[1], sys.argv[2] == "oom", sys.argv[3:]
me = str(os.getpid())
own = [d for h in hierarchies for d in glob.glob(os.path.join(h, "parallux-*", "c[0-9]*"))
       if me in open(os.path.join(d, "cgroup.procs")).read().split()]
assert len(own) == len(hierarchies), own
def write(name, text):
    for d in own:
        if version == "v2" or name.split(".")[0] in os.path.basename(os.path.dirname(os.path.dirname(d))):
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
if version == "v2":
    write("memory.peak", "%d\\n" % (300 << 20))
    write("cpu.stat", "usage_usec 2500000\\nuser_usec 2000000\\nsystem_usec 500000\\n")
    write("memory.events", "low 0\\nhigh 0\\nmax 3\\noom %d\\noom_kill %d\\noom_group_kill %d\\n" % ((oom,) * 3))
else:
    write("memory.max_usage_in_bytes", "%d\\n" % (300 << 20))
    write("cpuacct.usage_user", "2000000000\\n")
    write("cpuacct.usage_sys", "500000000\\n")
    write("memory.oom_control", "oom_kill_disable 0\\nunder_oom 0\\noom_kill %d\\n" % oom)
for d in own:  # this process is the last of its tree: the kernel lists it no more
    procs = os.path.join(d, "cgroup.procs")
    left = [p for p in open(procs).read().split() if p != me]
    with open(procs, "w") as f:
        f.write("".join(p + "\\n" for p in left))
if oom:
    os.kill(os.getpid(), signal.SIGKILL)
"""


def fake_root(tmp_path: Path, version: str) -> tuple[Path, list[Path]]:
    """A directory laid out like /sys/fs/cgroup: v2 (the memory controller there, not yet enabled for
    children), or v1 only (memory and cpuacct hierarchies); and the hierarchies' directories."""
    root = tmp_path / "cgroup"
    root.mkdir()
    if version == "v2":
        (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        (root / "cgroup.subtree_control").write_text("")
        return root, [root]
    hierarchies = [root / "memory", root / "cpuacct"]
    for hierarchy in hierarchies:
        hierarchy.mkdir()
    return root, hierarchies


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_the_cgroup_paths_on_a_fake_hierarchy(tmp_path: Path, version: str) -> None:
    """The command plays the kernel: it puts itself into the cgroup the launcher made for it in each
    hierarchy (the fake tree moves no one: the launcher's own fork lands nowhere), writes the figures a kernel
    would, leaves cgroup.procs as it exits and, for the oom, is killed as the kernel would kill it."""
    root, hierarchies = fake_root(tmp_path, version)
    kernel = script(tmp_path, "kernel.py", KERNEL)
    enter = "".join(f"d=$(ls -d {h}/parallux-*/c[0-9]* | sort -V | tail -n 1); echo $$ >> $d/cgroup.procs; "
                    for h in hierarchies)
    enter += f"exec {PY} {kernel} {version} " + "{mode} " + " ".join(map(str, hierarchies))
    config = write_config(tmp_path, "import json\nfrom parallux import goal\n" + PRINT + f"""
goal.local(workspace="ws", max_jobs=1)
show(goal.run({enter.format(mode="oom")!r}, name="oom", memory="64M", check=False).sync())
show(goal.run({enter.format(mode="fits")!r}, name="fits", memory="1G").sync())
show(goal.run({enter.format(mode="unlimited")!r}, name="unlimited").sync())
""")
    done = Cli("local", tmp_path, None).run(str(config), PARALLUX_CGROUP_ROOT=str(root))  # type: ignore[arg-type]
    results = results_of(done)
    assert results["oom"]["status"] == "oom", done.stdout + done.stderr
    for name in ("oom", "fits", "unlimited"):
        assert results[name]["max_rss_kb"] == 300 << 10, results[name]
        assert (results[name]["user_seconds"], results[name]["system_seconds"]) == (2.0, 0.5), results[name]
    assert results["fits"]["status"] == "ok" and results["unlimited"]["status"] == "ok"
    record = json.loads(next((tmp_path / "ws").glob("*/00001_oom/result.json")).read_text())
    assert record["memory_limit"] == 64 << 20
    first = next(hierarchies[0].glob("parallux-*")) / "c1"  # the first command's: its limit, and swap off
    if version == "v2":  # (and the whole tree killed on an oom)
        assert "+memory" in (first.parent / "cgroup.subtree_control").read_text()
        limits = ("memory.max", "memory.swap.max", "memory.oom.group"), [str(64 << 20), "0", "1"]
    else:  # memory + swap at most the memory limit
        limits = ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"), [str(64 << 20)] * 2
    assert [(first / name).read_text().strip() for name in limits[0]] == limits[1]
