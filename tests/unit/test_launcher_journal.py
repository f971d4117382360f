"""What a reattachable launcher keeps for the next channel (SPEC 19), as plain code: its journal of events
(spilled to a file past a size, replayed from it) and the redelivery numbering of what must arrive.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from parallux import _launcher
from parallux._redelivery import Redelivery


def test_Journal_spills_to_a_file_and_replays_from_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_launcher, "JOURNAL_MEMORY", 1000)
    journal = _launcher.Journal(str(tmp_path))
    events = [b'{"seq":%d,"pad":"%s"}\n' % (n, b"x" * 90) for n in range(1, 101)]
    for event in events:
        journal.add(event)
    assert journal.fd is not None and journal.spilled  # most went to the file
    assert os.listdir(tmp_path) == []  # which has no name
    assert journal.since(40) == events[40:]
    journal.ack(95)
    assert journal.since(95) == events[95:] and os.fstat(journal.fd).st_size > 0
    journal.ack(100)
    assert not journal.spilled and os.fstat(journal.fd).st_size == 0
    journal.add(b"101\n")
    assert journal.since(0) == [b"101\n"]  # (acknowledged ones never come back)
    journal.close()


def test_Redelivery_numbers_what_must_arrive_and_sends_again_what_did_not() -> None:
    redelivery = Redelivery()
    lines = [redelivery.encode({"op": "run", "id": i}) for i in (1, 2, 3)]
    assert [json.loads(line)["n"] for line in lines] == [1, 2, 3]
    assert "n" not in json.loads(redelivery.encode({"op": "walk", "id": 4}))  # a transfer: never again
    assert redelivery.fresh({"ev": "exit", "id": 1, "seq": 1, "got": 1})
    assert not redelivery.fresh({"ev": "exit", "id": 1, "seq": 1, "got": 1})  # the same event twice
    assert json.loads(redelivery.encode({"op": "ping"}))["ack"] == 1
    assert redelivery.after(2) == lines[2:]
