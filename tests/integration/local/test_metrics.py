"""metrics= and $PARALLUX_METRICS: a benchmark's own figures, read by the launcher where its files are.

Through the real CLI, on a local runner and on an SSH runner (the loopback sshd fixture): every case runs as
one command of one config, which writes what its results say to a JSON file; the tests read that, the
work dirs, the run log and ``show --format json``. The scanner of stdout is also checked on its own against
a plain ``re`` over the whole text, with blocks small enough that matches fall on their boundaries.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from parallux import _launcher
from tests.helpers import cli_env, run_cli, write_config
from tests.sshd import HOST_ALIAS

GFLOPS = r"GFLOP/s: ([0-9.]+)"
MB = 1_000_000

# name -> (command, metrics= or None)
CASES: dict[str, tuple[str, dict[str, Any] | None]] = {
    "group": ("echo 'GFLOP/s: 12.5'", {"gflops": GFLOPS}),
    "whole": ("echo 'took 3.25s'", {"t": r"[0-9]+\.[0-9]+(?=s)"}),
    "last": ("for i in 1 2 3; do echo \"progress rate=$i.5\"; done; echo done", {"rate": r"rate=([0-9.]+)"}),
    "lines": ("printf 'gflops 7.5\\n\\n# a comment\\nlatency_us 12\\n' > \"$PARALLUX_METRICS\"", None),
    "json": ("echo '{\"a\": 1.5, \"b\": 2}' > \"$PARALLUX_METRICS\"", None),
    "merge": ("echo 'x=1.25'; echo 'y 2' > \"$PARALLUX_METRICS\"", {"x": r"x=([0-9.]+)"}),
    "from_file": ("echo 'z 3' > \"$PARALLUX_METRICS\"", {"z": None}),
    "missing": ("echo nothing here", {"gflops": GFLOPS}),
    "missing_file": ("true", {"z": None}),
    "not_float": ("echo 'GFLOP/s: fast'", {"gflops": r"GFLOP/s: (\S+)"}),
    "bad_line": ("echo 'gflops 1 2' > \"$PARALLUX_METRICS\"", None),
    "clash": ("echo 'x=1'; echo 'x 2' > \"$PARALLUX_METRICS\"", {"x": r"x=([0-9.]+)"}),
    "huge": (f"yes 'progress 0.0 of many' | head -c {50 * MB}; echo 'final 4.25'", {"final": r"final ([0-9.]+)"}),
    "early": (f"echo 'final 6.5'; yes 'progress 1.0 later' | head -c {10 * MB}", {"final": r"final ([0-9.]+)"}),
    "link": ("ln -s \"$OUTSIDE\" \"$PARALLUX_METRICS\"", None),
    "fifo": ("mkfifo \"$PARALLUX_METRICS\"", None),  # opened, it would block the launcher's loop
    "big_values": ("echo '{\"instructions\": 3.2e12, \"delta\": -5}' > \"$PARALLUX_METRICS\"", None),
    "plain": ("echo \"$PARALLUX_METRICS\"", None),
    "failing": ("echo 'GFLOP/s: 1'; exit 3", {"gflops": GFLOPS}),
}

CONFIG = """
import json
from parallux import goal
{runner}
outside = {outside!r}
cases = json.load(open({cases!r}))
handles = {{}}
for name, (command, metrics) in cases.items():
    options = {{"metrics": metrics}} if metrics is not None else {{}}
    handles[name] = runner.run(command, name=name, work_relpath=name, check=False, env={{"OUTSIDE": outside}},
                               **options)
out = {{name: {{"status": r.status, "returncode": r.returncode, "error": r.error, "metrics": r.metrics,
               "work_dir": r.work_dir, "stdout": r.read_stdout() if name == "plain" else ""}}
       for name, r in ((name, h.sync()) for name, h in handles.items())}}
json.dump(out, open({out!r}, "w"))
"""


class Place:
    """Where the commands of a test run: a local runner, or an SSH runner on the loopback sshd."""

    def __init__(self, kind: str, tmp_path: Path, server: Any = None) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.server = server
        self.workspace = tmp_path / "ws"

    def runner_line(self) -> str:
        if self.kind == "local":
            return f"runner = goal.local(workspace={str(self.workspace)!r}, max_jobs=4)"
        return f"runner = goal.ssh('server', host=goal.args['host'], workspace={str(self.workspace)!r}, max_jobs=4)"

    def run(self, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
        if self.kind == "local":
            return run_cli(self.tmp_path, *args, str(config), timeout=180)
        return subprocess.run([sys.executable, "-m", "parallux", *args, str(config), "--", f"host={HOST_ALIAS}"],
                              cwd=self.tmp_path, env=self.server.client_env(), capture_output=True, text=True,
                              timeout=180, stdin=subprocess.DEVNULL)

    def show_json(self, log: Path) -> dict[str, Any]:
        env = cli_env(self.tmp_path) if self.kind == "local" else self.server.client_env()
        shown = subprocess.run([sys.executable, "-m", "parallux", "show", str(log), "--format", "json"],
                               cwd=self.tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)


@pytest.fixture(scope="module", params=["local", "ssh"])
def place(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Place:
    server = request.getfixturevalue("sshd_server") if request.param == "ssh" else None
    return Place(request.param, tmp_path_factory.mktemp(f"metrics-{request.param}"), server)


@pytest.fixture(scope="module")
def campaign(place: Place) -> tuple[Place, dict[str, Any], subprocess.CompletedProcess[str], Path]:
    """Every case run once per place: (where, what each result said, the CLI's outcome, the run log)."""
    tmp = place.tmp_path
    outside = tmp / "outside.txt"
    outside.write_text("secret 1.0\n")
    (tmp / "cases.json").write_text(json.dumps(CASES))
    config = write_config(tmp, CONFIG.format(runner=place.runner_line(), outside=str(outside),
                                             cases=str(tmp / "cases.json"), out=str(tmp / "out.json")))
    log = tmp / "run.jsonl"
    done = place.run(config, "--log", str(log))
    assert done.returncode == 0, done.stderr
    return place, json.loads((tmp / "out.json").read_text()), done, log


def test_metrics_are_read_from_stdout_and_from_the_metrics_file(campaign: Any) -> None:
    place, out, _, _ = campaign
    assert out["group"]["metrics"] == {"gflops": 12.5}, out["group"]
    assert out["whole"]["metrics"] == {"t": 3.25}
    assert out["last"]["metrics"] == {"rate": 3.5}  # the last of several matches
    assert out["lines"]["metrics"] == {"gflops": 7.5, "latency_us": 12.0}
    assert out["json"]["metrics"] == {"a": 1.5, "b": 2.0}
    assert out["merge"]["metrics"] == {"x": 1.25, "y": 2.0}
    assert out["from_file"]["metrics"] == {"z": 3.0}
    for name in ("group", "whole", "last", "lines", "json", "merge", "from_file", "huge", "early", "plain"):
        assert out[name]["status"] == "ok" and out[name]["returncode"] == 0, (name, out[name])
    assert out["plain"]["metrics"] == {}
    assert out["plain"]["stdout"].strip() == out["plain"]["work_dir"] + "/metrics.txt"  # set for every command


def test_metrics_are_found_in_a_huge_stdout(campaign: Any) -> None:
    place, out, _, _ = campaign
    assert out["huge"]["metrics"] == {"final": 4.25}, out["huge"]
    assert out["early"]["metrics"] == {"final": 6.5}, out["early"]  # 10 MB of lines after it
    assert os.path.getsize(Path(out["huge"]["work_dir"]) / "stdout.txt") > 50 * MB


def test_a_missing_or_broken_metric_fails_the_execution_naming_it(campaign: Any) -> None:
    place, out, done, _ = campaign
    missing = out["missing"]
    assert (missing["status"], missing["returncode"]) == ("failed", 0)
    assert missing["error"] == f"metric 'gflops' not found in stdout (pattern {GFLOPS!r})"
    assert out["missing_file"]["status"] == "failed"
    assert "metric 'z' not found in $PARALLUX_METRICS" in out["missing_file"]["error"]
    assert out["not_float"]["status"] == "failed"
    assert out["not_float"]["error"] == "metric 'gflops' is not a number: 'fast' (pattern 'GFLOP/s: (\\\\S+)')"
    assert out["bad_line"]["status"] == "failed" and "line 1" in out["bad_line"]["error"]
    assert out["clash"]["status"] == "failed" and "'x'" in out["clash"]["error"]
    # a command that failed anyway keeps its own failure
    assert (out["failing"]["status"], out["failing"]["returncode"], out["failing"]["error"]) == ("failed", 3, None)
    # the summary says why, not only "exited with status 0"
    assert f"metric 'gflops' not found in stdout (pattern {GFLOPS!r})" in done.stderr


def test_a_link_planted_at_the_metrics_file_is_not_followed(campaign: Any) -> None:
    place, out, _, _ = campaign
    link = out["link"]
    assert link["status"] == "failed" and link["metrics"] == {}, link
    assert "symbolic link" in link["error"] and "secret" not in json.dumps(link)
    assert out["fifo"]["status"] == "failed" and "not a regular file" in out["fifo"]["error"], out["fifo"]


def test_metrics_reach_result_json_the_run_log_and_show(campaign: Any) -> None:
    place, out, _, log = campaign
    record = json.loads((Path(out["group"]["work_dir"]) / "result.json").read_text())
    assert record["metrics"] == {"gflops": 12.5} and record["status"] == "ok"
    failed = json.loads((Path(out["missing"]["work_dir"]) / "result.json").read_text())
    assert failed["status"] == "failed" and failed["error"].startswith("metric 'gflops' not found")
    finished = {r["name"]: r for r in map(json.loads, log.read_text().splitlines()) if r["event"] == "finished"}
    assert finished["lines"]["metrics"] == {"gflops": 7.5, "latency_us": 12.0}
    assert "metrics" not in finished["plain"]
    rows = {row["name"]: row for row in place.show_json(log)["commands"]}
    assert rows["merge"]["metrics"] == {"x": 1.25, "y": 2.0}
    assert rows["big_values"]["metrics"] == {"instructions": 3.2e12, "delta": -5.0}  # no time's range limit
    assert rows["missing"]["status"] == "failed" and rows["missing"]["error"].startswith("metric 'gflops'")


def test_a_run_log_record_whose_metrics_are_not_numbers_is_skipped_by_the_views() -> None:
    from parallux._views.schema import problem
    finished = {"event": "finished", "time": 1.0, "seq": 1, "name": "a", "status": "ok"}
    assert problem({**finished, "metrics": {"x": 3.2e12, "n": 3}}) is None
    assert problem({**finished, "metrics": {"x": "fast"}}) == "finished whose metrics holds something else than numbers"
    assert problem({**finished, "metrics": [1.0]}) == "finished whose metrics is a list"


# -- the config side ------------------------------------------------------------------------------------------

BAD_METRICS = [
    ("metric={'a': 'x'}", "unknown option 'metric' (did you mean 'metrics'?)"),
    ("metrics='GFLOP/s: (.*)'", "metrics must be a dict of metric name to regular expression"),
    ("metrics={'a': '(unclosed'}", "metrics: the pattern of 'a' is not a regular expression"),
    ("metrics={'a': '(x)=(y)'}", "metrics: the pattern of 'a' has 2 groups"),
    ("metrics={'a b': 'x'}", "metrics: 'a b' is not a metric name"),
    ("metrics={'wall': 'x'}", "metrics: 'wall' is a measure parallux takes itself"),
    ("metrics={'a': 3}", "metrics: the pattern of 'a' must be a str (a regular expression) or None"),
]


def test_bad_metrics_options_are_config_errors_at_the_call(tmp_path: Path) -> None:
    calls = "\n".join(f"""
try:
    goal.run("true", {call})
except ConfigError as exc:
    print("caught:", exc)
""" for call, _ in BAD_METRICS)
    config = write_config(tmp_path, "from parallux import goal, ConfigError\n" + calls)
    done = run_cli(tmp_path, str(config), "--no-log")
    assert done.returncode == 0, done.stderr
    caught = [line for line in done.stdout.splitlines() if line.startswith("caught:")]
    assert len(caught) == len(BAD_METRICS), done.stdout
    for line, (_, message) in zip(caught, BAD_METRICS):
        assert message in line, line
    assert not (tmp_path / "parallux").exists()  # nothing ran

    config = write_config(tmp_path, "from parallux import goal\ngoal.run('true', metrics={'a': '(x'})\n", "bad.py")
    done = run_cli(tmp_path, str(config), "--no-log")
    assert done.returncode == 2 and "the pattern of 'a' is not a regular expression" in done.stderr


def test_a_metric_failure_is_retried_and_raised_like_any_failure(tmp_path: Path) -> None:
    # The first attempt prints no figure, the second does: retried, as retry_on's "failed" says.
    config = write_config(tmp_path, f"""
        from parallux import goal, CommandFailed
        goal.local(workspace={str(tmp_path / 'ws')!r})
        flaky = "if [ -e {tmp_path}/seen ]; then echo 'GFLOP/s: 2'; else touch {tmp_path}/seen; fi"
        result = goal.run(flaky, retries=1, metrics={{"gflops": {GFLOPS!r}}}).sync()
        print("retried:", result.attempt, [a["status"] for a in result.attempts], result.metrics)
        try:
            goal.run("echo no figure", metrics={{"gflops": {GFLOPS!r}}}, name="nofig").sync()
        except CommandFailed as exc:
            print("raised:", exc.results[0].status, exc.results[0].returncode)
        goal.run("echo still none", metrics={{"gflops": {GFLOPS!r}}}, name="last")
    """)
    done = run_cli(tmp_path, str(config), "--no-log")
    assert done.returncode == 1, done.stderr  # check=True: the last one fails the run
    assert "retried: 1 ['failed', 'ok'] {'gflops': 2.0}" in done.stdout
    assert "raised: failed 0" in done.stdout
    assert "command 'last' on runner 'local' exited with status 0, but metric 'gflops' not found" in done.stderr


def test_resume_reruns_an_execution_whose_metrics_failed_or_are_newly_declared(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace={str(tmp_path / 'ws')!r})
        declared = {{"gflops": {GFLOPS!r}}} if goal.args.get("declare") else {{}}
        fixed = goal.args.get("fixed")
        goal.schd("echo 'GFLOP/s: 3'" if fixed else "echo none", work_relpath="a", check=False,
                  metrics={{"gflops": {GFLOPS!r}}})
        goal.schd("echo 'GFLOP/s: 4'", work_relpath="b", **({{"metrics": declared}} if declared else {{}}))
        for r in goal.issue().sync():
            print(r.work_relpath, r.status, r.resumed, r.metrics)
    """)
    first = run_cli(tmp_path, str(config), "--no-log")
    assert "a failed False {}" in first.stdout and "b ok False {}" in first.stdout, first.stderr
    again = run_cli(tmp_path, "--resume", str(config), "--no-log", "--", "fixed=1", "declare=1")
    assert "a ok False {'gflops': 3.0}" in again.stdout, again.stdout + again.stderr  # failed: not resumed
    assert "b ok False {'gflops': 4.0}" in again.stdout  # its record has no gflops: run again
    third = run_cli(tmp_path, "--resume", str(config), "--no-log", "--", "fixed=1", "declare=1")
    assert "a ok True {'gflops': 3.0}" in third.stdout and "b ok True {'gflops': 4.0}" in third.stdout


def test_an_earlier_metrics_file_or_a_planted_link_is_moved_aside_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret 1.0\n")
    planted = tmp_path / "ws" / "planted"
    planted.mkdir(parents=True)
    (planted / "metrics.txt").symlink_to(outside)
    config = write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace={str(tmp_path / 'ws')!r})
        write = goal.args.get("write")
        for relpath in ("again", "planted"):
            r = goal.run("echo 'gflops 5' > $PARALLUX_METRICS" if write else "true", work_relpath=relpath).sync()
            print(relpath, r.status, r.metrics)
    """)
    first = run_cli(tmp_path, str(config), "--no-log", "--", "write=1")
    assert "again ok {'gflops': 5.0}" in first.stdout, first.stderr
    second = run_cli(tmp_path, str(config), "--no-log")
    assert "again ok {}" in second.stdout and "planted ok {}" in second.stdout, second.stdout + second.stderr
    assert (tmp_path / "ws" / "again" / ".history" / "1" / "metrics.txt").read_text() == "gflops 5\n"
    assert (planted / ".history" / "1" / "metrics.txt").is_symlink()
    assert outside.read_text() == "secret 1.0\n"


# -- the launcher's scan of stdout ----------------------------------------------------------------------------

def scan(tmp_path: Path, text: str, patterns: dict[str, str], block: int, limit: int = 1 << 30
         ) -> tuple[dict[str, float], str | None]:
    path = tmp_path / "stdout.txt"
    path.write_bytes(text.encode())
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return _launcher.stdout_metrics(fd, patterns, block=block, limit=limit)
    finally:
        os.close(fd)


def test_stdout_scan_finds_the_last_match_whatever_the_blocks(tmp_path: Path) -> None:
    rng = random.Random(20)
    pattern = r"value=([0-9.]+)"
    for _ in range(60):
        lines = [rng.choice(["noise %d" % rng.randrange(10 ** rng.randrange(1, 9)), "value=%d.5" % rng.randrange(999),
                             "x" * rng.randrange(0, 300)]) for _ in range(rng.randrange(1, 120))]
        text = "\n".join(lines) + rng.choice(["", "\n"])
        expected = re.findall(pattern, text, re.MULTILINE)
        values, problem = scan(tmp_path, text, {"v": pattern}, block=rng.randrange(8, 400))
        if expected:
            assert (values, problem) == ({"v": float(expected[-1])}, None), text
        else:
            assert values == {} and problem is not None and "not found" in problem


def test_stdout_scan_never_reads_a_number_cut_by_its_limit(tmp_path: Path) -> None:
    text = "result 123456.5\n" + "pad\n" * 3
    values, problem = scan(tmp_path, text, {"r": r"([0-9.]+)"}, block=4, limit=len(text) - 3)
    assert values == {} and "not found in the last" in (problem or "")
