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
    attempts = sum('"event":"started"' in line for line in log.read_text().splitlines())
    assert attempts > 1000  # the retries
    browser.load(report.as_uri(), READY)
    state = page_state(browser)
    assert browser.console_errors() == [] and state["errors"] == []
    assert state["attempts"] == attempts and state["bars"] == attempts
    assert 1 <= state["lanes"] <= 8  # lanes rebuilt from the intervals: never more than max_jobs ran at once
    shot = tmp_path / "report.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


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
