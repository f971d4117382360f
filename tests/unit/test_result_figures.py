"""A Result's five packed figures (start, end, user and system seconds, peak RSS): what goes in comes out,
unknown ones as None, and the run log's record reads the same values as the attributes."""

from __future__ import annotations

from types import SimpleNamespace

from parallux._result import Result, figures
from parallux._runlog import outcome


def test_Result_figures_come_back_as_given() -> None:
    result = Result(None, "ok", returncode=0, start_time=100.25, end_time=101.5, user_seconds=0.125,
                    system_seconds=0.0, max_rss_kb=0)
    assert figures(result) == (100.25, 101.5, 0.125, 0.0, 0)
    assert (result.start_time, result.end_time, result.user_seconds, result.system_seconds, result.max_rss_kb) \
        == (100.25, 101.5, 0.125, 0.0, 0)
    assert result.duration == 1.25


def test_Result_unknown_figures_are_None() -> None:
    result = Result(None, "error", error="no word from the launcher", kind="lost")
    assert figures(result) == (None, None, None, None, None) and result.duration is None
    partial = Result(None, "ok", start_time=5.0, end_time=None, max_rss_kb=2048)
    assert figures(partial) == (5.0, None, None, None, 2048) and partial.duration is None
    assert (partial.error, partial._kind, partial.resumed) == (None, None, False)


def test_Result_figures_that_are_no_numbers_are_kept_as_they_are() -> None:
    result = Result(None, "ok", start_time="yesterday", end_time=2.0)
    assert figures(result) == ("yesterday", 2.0, None, None, None)


def test_the_run_log_record_holds_the_results_figures() -> None:
    handle = SimpleNamespace(runner_name="local", work_dir="/w/1", memory=None)  # (what the record reads of it)
    result = Result(handle, "failed", returncode=3, start_time=10.0, end_time=12.5, user_seconds=1.5,
                    system_seconds=0.25, max_rss_kb=4096, error="boom", kind="died")
    record = outcome(result)
    assert {key: record[key] for key in ("status", "returncode", "start", "end", "duration", "user_seconds",
                                          "system_seconds", "max_rss_kb", "error")} == \
        {"status": "failed", "returncode": 3, "start": 10.0, "end": 12.5, "duration": 2.5, "user_seconds": 1.5,
         "system_seconds": 0.25, "max_rss_kb": 4096, "error": "boom"}
    unknown = outcome(Result(handle, "error", error="lost"))
    assert (unknown["start"], unknown["end"], unknown["duration"], unknown["max_rss_kb"]) == (None, None, None, None)


def test_an_exit_event_makes_the_result_and_the_record_the_general_path_makes() -> None:
    """``Result._of_exit`` and the run log's ``plain_outcome`` are the engine's shortcuts for how nearly every
    command ends: they must give what ``Result(handle, **outcome_of(event))`` and ``outcome(result)`` give."""
    from parallux._protocol import outcome_of
    from parallux._runlog import plain_outcome

    handle = SimpleNamespace(runner_name="local", work_dir="/w/1", memory=None)
    events = [{"ev": "exit", "id": 1, "status": "ok", "returncode": 0, "start": 10.0, "end": 10.5,
               "user_seconds": 0.25, "system_seconds": 0.125, "max_rss_kb": 2048, "signal": None},
              {"ev": "exit", "id": 2, "status": "failed", "returncode": 2, "start": 1.0, "end": 2.0,
               "user_seconds": 0.5, "system_seconds": 0.0, "max_rss_kb": 100, "signal": None,
               "stderr_tail": "oops\n", "metrics": {"n": 3}},
              {"ev": "exit", "id": 3, "status": "timeout", "returncode": -15, "start": 1.0, "end": 9.0,
               "signal": 15, "error": "killed", "reason": "timeout"}]
    for event in events:
        fast, general = Result._of_exit(handle, event), Result(handle, **outcome_of(event))
        assert (fast.status, fast.returncode, figures(fast), fast._more) == \
            (general.status, general.returncode, figures(general), general._more)
        assert type(fast.status) is type(general.status)
        if fast._more is None:  # (what the run log's shortcut takes: nothing of its own)
            record = {"runner": "local", "work_dir": "/w/1"}
            plain_outcome(record, fast)
            assert record == outcome(general)
    limited = SimpleNamespace(runner_name="local", work_dir="/w/1", memory=1 << 20)
    record = {"runner": "local", "work_dir": "/w/1"}
    plain_outcome(record, Result._of_exit(limited, events[0]))
    assert record == outcome(Result(limited, **outcome_of(events[0]))) and record["memory_limit"] == 1 << 20
