"""--resume's lookup of earlier records, with test-double seats: batched per seat, first candidate wins."""

from __future__ import annotations

from typing import Any

from parallux._handles import Command, Completion, Settled
from parallux._resume import find_completed


class RecordingSeat:
    """Answers ``records`` from a dict of work dir -> record and counts the calls (one per batch)."""

    def __init__(self, name: str, records: dict[str, dict[str, Any]], fail: bool = False) -> None:
        self.name = name
        self.stored = records
        self.fail = fail
        self.calls: list[list[str]] = []
        self.handle = self  # (a seat's Runner handle: what a resumed command's runner becomes)
        self.settled = Settled(f"/{name}")  # (its workspace, as a finished command keeps its work dir)
        self.view = self  # (what it publishes for the main thread: its work dirs, its settled)

    def work_dir_of(self, relpath: str) -> str:
        return f"/{self.name}/{relpath}"

    def records(self, work_dirs: list[str]) -> list[dict[str, Any] | None]:
        self.calls.append(work_dirs)
        if self.fail:
            raise OSError("connection lost")
        return [self.stored.get(d) for d in work_dirs]


def command(seq: int, text: str, candidates: tuple[Any, ...]) -> Command:
    handle = Command(Completion(), command=text, command_text=text, seq=seq, name=f"job{seq}",
                     work_relpath=f"w{seq}", timeout=None, check=True)
    handle.candidates = candidates
    handle.resume_check = True
    return handle


def read_records(seat: RecordingSeat, work_dirs: list[str]) -> list[dict[str, Any] | None]:
    return seat.records(work_dirs)


def done(text: str, **extra: Any) -> dict[str, Any]:
    return dict({"returncode": 0, "command": text, "start": 1.0, "end": 2.0}, **extra)


def test_find_completed_reads_each_runner_once_per_rank_and_the_first_candidate_wins() -> None:
    a = RecordingSeat("a", {"/a/w0": done("c0"), "/a/w1": done("c1", returncode=3), "/a/w2": done("other"),
                              "/a/w4": done("c4", killed=True)})
    b = RecordingSeat("b", {"/b/w0": done("c0", cores=[9]), "/b/w1": done("c1", cores=[2], attempt=1),
                              "/b/w2": done("c2"), "/b/w3": done("c3")})
    handles = [command(i, f"c{i}", (a, b)) for i in range(5)] + [command(5, "c3", (b,))]
    handles[3].candidates = (b, a)

    find_completed(handles, read_records)

    resumed = {h.seq: h.resumed_result for h in handles if h.resumed_result is not None}
    assert sorted(resumed) == [0, 1, 2, 3]
    assert handles[0].runner is a and handles[0].cores == ()          # a is its first candidate
    assert handles[1].runner is b and handles[1].cores == (2,) and handles[1].attempt == 1  # a's failed
    assert handles[2].runner is b                                       # a's record is another command's
    assert handles[3].runner is b                                       # b is its first candidate
    assert handles[4].resumed_result is None                            # killed is not done
    assert handles[5].resumed_result is None                            # w5 has no record on b
    assert all(r.resumed and r.status == "ok" for r in resumed.values())
    # rank 0: a for 0,1,2,4 and b for 3,5; rank 1: b for 1,2,4 and a for nothing left
    assert a.calls == [["/a/w0", "/a/w1", "/a/w2", "/a/w4"]]
    assert b.calls == [["/b/w3", "/b/w5"], ["/b/w1", "/b/w2", "/b/w4"]]


def test_find_completed_treats_a_runner_that_cannot_answer_as_having_no_records() -> None:
    broken = RecordingSeat("x", {}, fail=True)
    fine = RecordingSeat("y", {"/y/w0": done("c0")})
    handles = [command(0, "c0", (broken, fine)), command(1, "c1", (broken,))]
    find_completed(handles, read_records)
    assert handles[0].runner is fine and handles[1].resumed_result is None
