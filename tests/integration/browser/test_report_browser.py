"""The HTML report in a real browser: headless Chromium loads it from disk and the page's own figures are read.

The page exposes ``window.__parallux_report`` for this: ``ready``, ``attempts`` (rows in its data),
``bars_drawn`` (attempts whose bar the last frame of the timeline drew), ``lanes``, ``errors``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from parallux._views.reader import load_run
from parallux._views.report import write_report
from tests.helpers import run_cli, write_config
from tests.synthetic import write_synthetic_log

browser_module = pytest.importorskip("tests.browser")
if browser_module.find_chromium() is None:
    pytest.skip("chromium is not installed (scripts/setup installs it)", allow_module_level=True)
Chromium = browser_module.Chromium

READY = "window.__parallux_report && (window.__parallux_report.ready || window.__parallux_report.errors.length > 0)"


def page_state(browser: Any) -> dict[str, Any]:
    return json.loads(browser.evaluate("""JSON.stringify({ready: __parallux_report.ready,
        attempts: __parallux_report.attempts, bars: __parallux_report.bars_drawn, lanes: __parallux_report.lanes,
        draws: __parallux_report.draws, errors: __parallux_report.errors,
        tooltip: document.getElementById('tooltip').hidden ? null : document.getElementById('tooltip').textContent})"""))


@pytest.fixture(scope="module")
def browser() -> Any:
    with Chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real 1,000-command run (some fail, some are retried): its directory and its log."""
    home = tmp_path_factory.mktemp("thousand")
    write_config(home, """
        from parallux import goal
        goal.local(workspace="ws", max_jobs=8)
        for i in range(1000):
            fails = i % 97 == 5
            goal.schd(f"echo oops {i} >&2; exit 2" if fails else "true", name=f"job{i:04d}",
                      check=False, retries=1 if i % 194 == 5 else 0)
    """)
    done = run_cli(home, "config.py", "-q", timeout=240)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stderr.splitlines() if "run log: " in line)
    return home, Path(line.split("run log: ", 1)[1].strip())


def test_report_browser_draws_one_bar_per_attempt_of_a_real_run(browser: Any, real_run: tuple[Path, Path],
                                                               tmp_path: Path) -> None:
    home, log = real_run
    report = tmp_path / "report.html"
    done = run_cli(home, "report", str(log), "-o", str(report))
    assert done.returncode == 0, done.stderr
    attempts = sum('"event":"retrying"' in line or '"event":"finished"' in line for line in log.read_text().splitlines())
    assert attempts > 1000  # the retries
    browser.load(report.as_uri(), READY)
    state = page_state(browser)
    assert browser.console_errors() == [] and state["errors"] == []
    assert state["attempts"] == attempts and state["bars"] == attempts
    assert 1 <= state["lanes"] <= 8  # lanes rebuilt from the intervals: never more than max_jobs ran at once
    shot = tmp_path / "report.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_report_browser_aggregates_a_run_beyond_its_detail_and_keeps_the_exact_counts(
        browser: Any, real_run: tuple[Path, Path], tmp_path: Path) -> None:
    home, log = real_run
    small = tmp_path / "aggregated.html"
    done = run_cli(home, "report", str(log), "-o", str(small), "--detail", "300")
    assert done.returncode == 0, done.stderr
    assert "1000 commands, 150 of them drawn in full" in done.stderr
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    attempts = sum(r["event"] in ("retrying", "finished") for r in lines)
    counts: dict[str, int] = {}
    for record in lines:
        if record["event"] == "finished":
            counts[record["status"]] = counts.get(record["status"], 0) + 1
    browser.load(small.as_uri(), READY)
    state = page_state(browser)
    assert browser.console_errors() == [] and state["errors"] == []
    aggregated = browser.evaluate("JSON.stringify(__parallux_report.aggregated)")
    aggregated = json.loads(aggregated)
    assert aggregated["attempts"] == attempts and aggregated["commands"] == 1000 and aggregated["detail"] == 300
    assert 150 <= aggregated["bars"] == state["attempts"] < attempts  # (the sample's, retries included)
    assert aggregated["lanes"] == state["lanes"] >= 1
    data = browser.evaluate("JSON.stringify({counts: __parallux_report.data.run.counts, "
                            "durations: __parallux_report.data.aggregate.durations.all, "
                            "failed: __parallux_report.data.commands.rows.filter(r => r[2] !== 'ok').length})")
    data = json.loads(data)
    assert data["counts"] == counts and sum(data["durations"]) == 1000  # every command, not the sample's
    assert data["failed"] == sum(n for status, n in counts.items() if status != "ok")  # every failure shown
    said = browser.evaluate("document.getElementById('facts').textContent")
    assert f"{attempts:,} attempts of 1,000 commands, more than 300" in said


def test_report_browser_hover_shows_details_and_the_wheel_zooms(browser: Any, real_run: tuple[Path, Path],
                                                               tmp_path: Path) -> None:
    home, log = real_run
    report = tmp_path / "report.html"
    assert run_cli(home, "report", str(log), "-o", str(report)).returncode == 0
    browser.load(report.as_uri(), READY)
    # the middle of the first bar of the first lane, in page coordinates
    where = json.loads(browser.evaluate("""(function () {
        var t = __parallux_report.timeline, k = t.perRow[0][0], box = t.canvas.getBoundingClientRect();
        var x = box.left + t.gutter + ((t.start[k] + t.end[k]) / 2 - t.t0) * t.scale();
        return JSON.stringify({x: x, y: box.top + t.axis + t.rowH / 2}); })()"""))
    browser.send("Input.dispatchMouseEvent", {"type": "mouseMoved", **where})
    tooltip = page_state(browser)["tooltip"]
    assert tooltip is not None and tooltip.startswith("job") and "runner local" in tooltip and "work dir" in tooltip
    before = page_state(browser)
    browser.send("Input.dispatchMouseEvent", {"type": "mouseWheel", **where, "deltaX": 0, "deltaY": -2000})
    browser.evaluate("new Promise(function (done) { requestAnimationFrame(function () { done(0); }); })",
                     await_promise=True)
    after = page_state(browser)
    assert after["draws"] > before["draws"] and 0 < after["bars"] < before["bars"]
    assert browser.console_errors() == []


def test_report_browser_renders_100000_commands(browser: Any, tmp_path: Path) -> None:
    log = tmp_path / "big.jsonl"
    counts = write_synthetic_log(log, 100_000)
    report = tmp_path / "big.html"
    write_report(load_run(str(log)), str(report))
    browser.load(report.as_uri(), READY, timeout=120)
    state = page_state(browser)
    assert browser.console_errors() == [] and state["errors"] == []
    assert state["attempts"] == state["bars"] == counts["attempts"]
    assert state["lanes"] == 16 + 64 + 32 + 32
    # no DOM node per command: the page stays small whatever the run's size
    assert browser.evaluate("document.getElementsByTagName('*').length") < 5000


# -- what the embedded data may hold ---------------------------------------------------------------------------

# Each ends or corrupts a <script> block if written raw: "<!--<script>" makes the parser swallow the rest of
# the page (the "double escaped" state), "</script>" ends the block, U+2028/2029 end a line in JavaScript.
HOSTILE = "<!--<script>x</script>--> & \u2028\u2029 ]]>"


def test_report_browser_shows_names_and_stderr_that_look_like_html(browser: Any, tmp_path: Path) -> None:
    write_config(tmp_path, f"""
        from parallux import goal
        goal.local(workspace="ws", max_jobs=2)
        goal.schd("true", name={HOSTILE!r})
        goal.schd("printf '%s\\\\n' '<!--<script>' '</script>stderr end' >&2; exit 4", name="fails <!--<script>",
                  check=False)
    """)
    assert run_cli(tmp_path, "config.py", "-q").returncode == 0
    report = tmp_path / "report.html"
    done = run_cli(tmp_path, "report", "-o", str(report))
    assert done.returncode == 0, done.stderr
    browser.load(report.as_uri(), READY, timeout=30)
    state = page_state(browser)
    assert browser.console_errors() == [] and state["errors"] == [] and state["ready"]
    assert state["attempts"] == state["bars"] == 2
    slowest = browser.evaluate("document.getElementById('slowest').textContent")
    failures = browser.evaluate("document.getElementById('failures').textContent")
    assert HOSTILE in slowest and "fails <!--<script>" in slowest
    assert "<!--<script>\n</script>stderr end" in failures
    names = browser.evaluate("JSON.stringify(__parallux_report.data.commands.rows.map(function (r) { return r[1]; }))")
    assert json.loads(names) == [HOSTILE, "fails <!--<script>"]


# -- a runner on several hosts ---------------------------------------------------------------------------------


def write_two_node_log(path: Path) -> None:
    """A Slurm runner on nodes n1 and n2 with core_pool=[0, 1] (logged as the real run log logs it: the
    runner's host "n1,n2"), four commands at once, one per core of each node."""
    start = 1_700_000_000.0
    events: list[dict[str, Any]] = [
        {"event": "run_started", "schema": 2, "run_id": "20231114-221320-2nodes", "config": "/home/u/two.py",
         "argv": [], "time": start, "pid": 1, "host": "login", "python": "3.11.2", "parallux": "0.1.0",
         "cwd": "/home/u", "log": str(path)},
        {"event": "runner", "time": start, "name": "cluster", "kind": "slurm", "host": "n1,n2", "max_jobs": 2,
         "logical_cores": 2, "core_pool": [0, 1], "numa_nodes": {"0": [0, 1]}}]
    for seq, (host, core) in enumerate([("n1", 0), ("n1", 1), ("n2", 0), ("n2", 1)], start=1):
        name = f"c{seq}"
        where = {"seq": seq, "name": name, "runner": "cluster", "host": host, "work_dir": f"/scratch/{name}",
                 "cores": [core], "numa_node": 0, "attempt": 0}
        events.append({"event": "queued", "time": start + 0.1, "seq": seq, "name": name, "command": "sleep 1",
                       "work_relpath": name})
        events.append({"event": "started", "time": start + 1, **where})
        events.append({"event": "finished", "time": start + 3, **where, "status": "ok", "returncode": 0,
                       "start": start + 1 + seq / 100, "end": start + 3, "duration": 2 - seq / 100,
                       "user_seconds": 1.0, "system_seconds": 0.1, "max_rss_kb": 1000, "signal": None,
                       "error": None, "resumed": False})
    events.append({"event": "run_finished", "time": start + 3.5, "counts": {"ok": 4}, "elapsed": 3.5,
                   "retries": 0, "resumed": 0, "busy_seconds": {}, "started": 4, "exit_status": 0, "halted": None})
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def test_report_browser_draws_each_node_of_a_runner_on_its_own_lanes(browser: Any, tmp_path: Path) -> None:
    log = tmp_path / "two.jsonl"
    write_two_node_log(log)
    report = tmp_path / "two.html"
    done = run_cli(tmp_path, "report", str(log), "-o", str(report))
    assert done.returncode == 0, done.stderr
    browser.load(report.as_uri(), READY)
    state = page_state(browser)
    assert browser.console_errors() == [] and state["errors"] == []
    assert state["lanes"] == 4 and state["bars"] == 4
    lanes = json.loads(browser.evaluate("""JSON.stringify({labels: __parallux_report.timeline.labels,
        per_row: __parallux_report.timeline.perRow.map(function (row) { return row.length; })})"""))
    assert lanes == {"labels": ["slot 0", "slot 1", "slot 2", "slot 3"], "per_row": [1, 1, 1, 1]}
    facts = json.loads(browser.evaluate("""JSON.stringify(Array.from(document.querySelectorAll('#facts dt'))
        .map(function (dt) { return [dt.textContent, dt.nextElementSibling.textContent]; }))"""))
    assert dict(facts)["hosts"] == "n1, n2"


def write_gpu_log(path: Path) -> None:
    """A local runner without a core pool, 4 slots and GPUs 0-3: three commands on one GPU each, one on two,
    one on none, as the run log logs them (``gpus`` in started and finished)."""
    start = 1_700_000_000.0
    events: list[dict[str, Any]] = [
        {"event": "run_started", "schema": 2, "run_id": "20231114-221320-gpus", "config": "/home/u/gpus.py",
         "argv": [], "time": start, "pid": 1, "host": "box", "python": "3.11.2", "parallux": "0.1.0",
         "cwd": "/home/u", "log": str(path)},
        {"event": "runner", "time": start, "name": "local", "kind": "local", "host": "box", "max_jobs": 4,
         "logical_cores": 8, "core_pool": None, "numa_nodes": None}]
    for seq, gpus in enumerate([[0], [1], [2, 3], [0], []], start=1):
        name = f"c{seq}"
        where = {"seq": seq, "name": name, "runner": "local", "host": "box", "work_dir": f"/ws/{name}",
                 "cores": [], "numa_node": None, "attempt": 0, **({"gpus": gpus} if gpus else {})}
        begin = start + 1 + (2 if seq == 4 else 0)
        events.append({"event": "queued", "time": start + 0.1, "seq": seq, "name": name, "command": "sleep 1",
                       "work_relpath": name})
        events.append({"event": "started", "time": begin, **where})
        events.append({"event": "finished", "time": begin + 1.5, **where, "status": "ok", "returncode": 0,
                       "start": begin, "end": begin + 1.5, "duration": 1.5, "user_seconds": 1.0,
                       "system_seconds": 0.1, "max_rss_kb": 1000, "signal": None, "error": None, "resumed": False})
    events.append({"event": "run_finished", "time": start + 5, "counts": {"ok": 5}, "elapsed": 5,
                   "retries": 0, "resumed": 0, "busy_seconds": {}, "started": 5, "exit_status": 0, "halted": None})
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def test_report_browser_draws_a_lane_per_gpu(browser: Any, tmp_path: Path) -> None:
    log = tmp_path / "gpus.jsonl"
    write_gpu_log(log)
    report = tmp_path / "gpus.html"
    done = run_cli(tmp_path, "report", str(log), "-o", str(report))
    assert done.returncode == 0, done.stderr
    browser.load(report.as_uri(), READY)
    state = page_state(browser)
    assert browser.console_errors() == [] and state["errors"] == []
    lanes = json.loads(browser.evaluate("""JSON.stringify({labels: __parallux_report.timeline.labels,
        groups: __parallux_report.timeline.groups.map(function (g) { return g.name; }),
        per_row: __parallux_report.timeline.perRow.map(function (row) { return row.length; })})"""))
    slots = [label for label in lanes["labels"] if label.startswith("slot")]
    assert lanes["labels"][len(slots):] == ["gpu 0", "gpu 1", "gpu 2", "gpu 3"]
    assert lanes["groups"] == ["local", "local GPUs"]
    assert lanes["per_row"][len(slots):] == [2, 1, 1, 1]  # c1 and c4 on GPU 0, c3 on GPUs 2 and 3
    assert sum(lanes["per_row"][:len(slots)]) == 5 and state["bars"] == 5


# -- benchmarks ------------------------------------------------------------------------------------------------


def bench_state(browser: Any) -> dict[str, Any]:
    return json.loads(browser.evaluate("JSON.stringify(__parallux_report.benchmarks)"))


def test_report_browser_draws_each_benchmarks_executions_and_marks_the_outlier(browser: Any, tmp_path: Path) -> None:
    from tests.synthetic import write_benchmark_log
    log = tmp_path / "bench.jsonl"
    gflops = [10.0, 10.2, 9.9, 10.1, 10.0, 30.0]  # r6: an outlier
    write_benchmark_log(log, [
        {"key": "mm/O2", "name": "mm-O2", "wall": [1.5, 1.4, 1.6, 1.5, 1.45, 1.55], "metrics": {"gflops": gflops},
         "warmup": 1},
        {"key": "fft", "name": "fft", "wall": [2.0, 2.1, 2.5], "status": ["ok", "failed", "ok"]}],
        order=("shuffle", 2 ** 63 - 25))
    report = tmp_path / "bench.html"
    done = run_cli(tmp_path, "report", str(log), "-o", str(report))
    assert done.returncode == 0, done.stderr
    browser.load(report.as_uri(), READY)
    assert browser.console_errors() == [] and page_state(browser)["errors"] == []
    state = bench_state(browser)
    # wall: 6 + 2 executions that ended ok (warm-up and failure left out), no outlier
    assert (state["count"], state["shown"], state["measure"]) == (2, 2, "wall")
    assert (state["points_drawn"], state["outliers_drawn"]) == (8, 0)
    assert browser.evaluate("document.getElementById('benchmarks-section').hidden") is False
    browser.evaluate("""(function () { var s = document.getElementById('bench-measure'); s.value = 'gflops';
        s.dispatchEvent(new Event('change')); })()""")
    state = bench_state(browser)
    assert (state["measure"], state["points_drawn"], state["outliers_drawn"]) == ("gflops", 6, 1)
    # hovering the outlier says which execution it is
    where = json.loads(browser.evaluate("""(function () {
        var box = document.getElementById('bench-canvas').getBoundingClientRect();
        var hit = null;
        for (var y = 0; y < box.height && !hit; y += 1) { for (var x = box.width - 1; x > 330 && !hit; x -= 1) {
          document.getElementById('bench-canvas').dispatchEvent(new MouseEvent('mousemove',
            {clientX: box.left + x, clientY: box.top + y}));
          var t = document.getElementById('tooltip');
          if (!t.hidden && t.textContent.indexOf('outlier') >= 0) { hit = {x: x, y: y}; } } }
        return JSON.stringify(hit); })()"""))
    assert where is not None
    tooltip = page_state(browser)["tooltip"]
    assert "mm-O2" in tooltip and "repetition r6" in tooltip and "gflops 30" in tooltip
    facts = json.loads(browser.evaluate("""JSON.stringify(Array.from(document.querySelectorAll('#facts dt'))
        .map(function (dt) { return [dt.textContent, dt.nextElementSibling.textContent]; }))"""))
    assert dict(facts)["order"] == f"shuffle (seed {2 ** 63 - 25})"  # exact: no JS number holds it
    shot = tmp_path / "bench.png"
    browser.screenshot(shot)
    assert shot.stat().st_size > 10_000


def test_report_browser_without_benchmarks_has_no_benchmark_section(browser: Any, tmp_path: Path) -> None:
    log = tmp_path / "plain.jsonl"
    write_synthetic_log(log, 50)
    report = tmp_path / "plain.html"
    write_report(load_run(str(log)), str(report))
    browser.load(report.as_uri(), READY)
    assert page_state(browser)["errors"] == [] and bench_state(browser)["count"] == 0
    assert browser.evaluate("document.getElementById('benchmarks-section').hidden") is True
    assert browser.evaluate("document.getElementById('machines-section').hidden") is True  # (none recorded)


def test_report_browser_opens_10000_benchmarks_a_page_at_a_time(browser: Any, tmp_path: Path) -> None:
    from tests.synthetic import write_benchmark_log
    log = tmp_path / "many.jsonl"
    write_benchmark_log(log, [{"key": f"k/{i:05d}", "name": f"kernel{i:05d}", "wall": [1.0 + (i % 7) / 100 + r / 1000
                                                                                        for r in range(10)]}
                              for i in range(10_000)], max_jobs=32)
    report = tmp_path / "many.html"
    write_report(load_run(str(log)), str(report))
    browser.load(report.as_uri(), READY, timeout=180)
    assert browser.console_errors() == [] and page_state(browser)["errors"] == []
    state = bench_state(browser)
    assert (state["count"], state["shown"], state["points_drawn"], state["pages"]) == (10_000, 25, 250, 400)
    browser.evaluate("document.getElementById('bench-next').click()")
    assert bench_state(browser)["page"] == 1
    browser.evaluate("""(function () { var f = document.getElementById('bench-filter'); f.value = 'kernel0999';
        f.dispatchEvent(new Event('input')); })()""")
    state = bench_state(browser)
    assert (state["shown"], state["page"], state["pages"]) == (10, 0, 1)


# -- machines ----------------------------------------------------------------------------------------------------


def test_report_browser_shows_the_machines_their_probes_noise_and_the_config(browser: Any, tmp_path: Path) -> None:
    from tests.machine_logs import NOISE, SHA_A, recorded_log
    log = recorded_log(tmp_path / "machines.jsonl", gcc=f"gcc 12.2.0 {HOSTILE}\nsecond line\n")
    report = tmp_path / "machines.html"
    done = run_cli(tmp_path, "report", str(log), "-o", str(report))
    assert done.returncode == 0, done.stderr
    browser.load(report.as_uri(), READY)
    assert browser.console_errors() == [] and page_state(browser)["errors"] == []
    assert browser.evaluate("document.getElementById('machines-section').hidden") is False
    assert json.loads(browser.evaluate("JSON.stringify(__parallux_report.machines)")) == \
        {"machines": 2, "facts": 19, "probes": 2, "noise": 1}  # (no CPU isolated on either: no row)
    table = json.loads(browser.evaluate("""JSON.stringify(Array.from(document.querySelectorAll('#machines-box tr'))
        .map(function (tr) { return Array.from(tr.children).map(function (c) { return c.textContent; }); }))"""))
    rows = {row[0]: row[1:] for row in table}
    assert rows["machine"] == ["vm", "n1"]
    assert rows["CPU"] == ["Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", "-"]
    assert rows["topology"] == ["2 sockets x 20 cores x 2 threads", "-"]
    assert rows["kernel"][0] == "6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"
    assert rows["governor"] == ["performance on CPUs 0-79", "-"] and rows["turbo"] == ["off", "-"]
    assert rows["load (1/5/15 min)"] == ["0.12/0.30/0.25 -> 1.50/0.80/0.40", "-"]
    assert rows["runners"] == ["local, srv", "slurm@n1"]
    text = {key: browser.evaluate(f"document.getElementById('machines-{key}').textContent")
            for key in ("noise", "probes", "config")}
    assert text["noise"] == NOISE
    assert f"probe gcc on vm: gcc 12.2.0 {HOSTILE}" in text["probes"]  # as text, never as HTML
    assert "$ gcc --version" in text["probes"] and "second line" in text["probes"]
    assert "probe gcc on n1: could not run: sh: gcc: not found" in text["probes"]
    assert text["config"] == f"config /home/perf/bench.py · sha256 {SHA_A} · git {'1a2b3c4d' + '5' * 32} (dirty) " \
                             "in /home/perf"


def test_report_browser_names_an_oom_and_its_limit(browser: Any, tmp_path: Path) -> None:
    child = tmp_path / "child.py"
    child.write_text("x = b'x' * (256 << 20)\n")
    write_config(tmp_path, f"""
        import sys
        from parallux import goal
        goal.local(workspace="ws")
        goal.run(f"{{sys.executable}} {child}", name="hog", memory="64M", check=False)
    """)
    done = run_cli(tmp_path, "config.py", "-q")
    assert done.returncode == 0, done.stderr
    report = tmp_path / "report.html"
    assert run_cli(tmp_path, "report", "-o", str(report)).returncode == 0
    browser.load(report.as_uri(), READY, timeout=30)
    assert page_state(browser)["errors"] == []
    for box in ("failure-groups", "failures"):
        assert "oom (limit 64 MiB)" in browser.evaluate(f"document.getElementById('{box}').textContent")
