"""The reader of a transfer's frames as plain code (SPEC 20), where a file's change must fall between two frames
exactly: a file that shrank is sent again, one that keeps changing is an error naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from parallux._launcher import AGAIN, CHUNK, RESENDS, TreeReader, TreeWriter, describe_os_error
from tests.transfer_trees import T0, leftovers


def test_reader_resends_a_file_that_shrank_between_two_frames(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    path = tmp_path / "src" / "f"
    path.write_bytes(b"a" * (3 * CHUNK))
    reader = TreeReader(os.fsencode(tmp_path / "src"), ["f"], CHUNK)
    writer = TreeWriter(os.fsencode(tmp_path / "dst"), [["f", 0o644, T0]])
    writer.make_dirs([["", 0o755, T0]])
    parts = []
    while (frame := reader.next_frame()) is not None:
        parts += frame[0]
        writer.write(*frame)
        if len(parts) == 1:
            path.write_bytes(b"b" * 10)  # shrinks (and changes) after its first frame
    writer.finish([], [], [["", 0o755, T0]])
    assert (tmp_path / "dst" / "f").read_bytes() == b"b" * 10
    assert parts == [[0, CHUNK, False], [0, 0, AGAIN], [0, 10, True]]
    assert leftovers(tmp_path / "dst") == []


def test_reader_gives_up_on_a_file_that_keeps_changing_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * (3 * CHUNK))
    reader = TreeReader(os.fsencode(tmp_path), ["f"], CHUNK)
    parts = []
    with pytest.raises(OSError) as info:
        while (frame := reader.next_frame()) is not None:
            parts += frame[0]
            with open(path, "ab") as f:
                f.write(b"b")  # grows after every frame
    assert describe_os_error(info.value) == f"Changed while it was read, {RESENDS + 1} times: {path}"
    assert [part[2] for part in parts].count(AGAIN) == RESENDS
    assert True not in [part[2] for part in parts]
    reader.close()
