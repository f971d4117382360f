"""What the views write, through the real CLI: where (`report -o`, `export`: FIFOs and devices written into,
directories, missing parents and links refused with the path given) and what (CSV cells a spreadsheet would
run, terminal escapes in tables).
"""

from __future__ import annotations

import csv
import io
import os
import stat
import subprocess
import threading
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import run_cli, write_config


# Names a spreadsheet would run as formulas, a terminal would obey, or an HTML parser would misread.
FORMULAS = ["=HYPERLINK(\"http://x.test\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]
ESCAPE = "esc\x1b]0;owned\x07\x1b[31mred\x9bq"
CONFIG = f"""
    from parallux import goal
    goal.local(workspace="ws", max_jobs=2)
    for i, name in enumerate({FORMULAS!r}):
        goal.schd("true", name=name, work_relpath=f"f/{{i}}")
    goal.schd("true", name={ESCAPE!r}, work_relpath="{ESCAPE}")
    goal.schd("echo '<!--<script>' >&2; exit 3", name="fails", check=False, work_relpath="fails")
"""
# Each way of writing a file: (argv before the target, what the file starts with)
WRITERS = {"report": (["report", "-o"], b"<!DOCTYPE html>"), "trace": (["export", "--trace"], b'{"displayTimeUnit"'),
           "junit": (["export", "--junit"], b"<?xml"), "csv": (["export", "--csv"], b"seq,name,")}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One finished run of CONFIG: its directory and its log's path."""
    home = tmp_path_factory.mktemp("outputs")
    write_config(home, CONFIG)
    done = run_cli(home, "config.py", "-q", "--", "argv\x1b[2Jhere")
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stderr.splitlines() if "run log: " in line)
    return home, line.split("run log: ", 1)[1].split(" (")[0].strip()


def write_to(run: tuple[Path, str], writer: str, target: Path | str) -> subprocess.CompletedProcess[str]:
    home, log = run
    return run_cli(home, *WRITERS[writer][0][:1], log, *WRITERS[writer][0][1:], str(target))


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if "tmp" in p.name)


# -- where: FIFOs, devices, directories, missing parents, links -----------------------------------------------


class FifoReader:
    """A private FIFO read to its end by a thread. The test keeps a write end open until it has run the
    CLI, so that the thread never waits forever, whether or not the CLI wrote into the FIFO."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path, 0o600)
        self.path = path
        self.read_end = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.spare_writer = os.open(path, os.O_WRONLY)
        os.set_blocking(self.read_end, True)
        self.data = bytearray()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while chunk := os.read(self.read_end, 65536):
            self.data += chunk

    def finish(self) -> bytes:
        os.close(self.spare_writer)
        self.thread.join()
        os.close(self.read_end)
        return bytes(self.data)


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[FifoReader]:
    reader = FifoReader(tmp_path / "out.fifo")
    yield reader
    if reader.thread.is_alive():
        reader.finish()


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_output_into_a_fifo_is_written_into_it_and_the_fifo_stays(run: tuple[Path, str], fifo: FifoReader,
                                                                  writer: str) -> None:
    done = write_to(run, writer, fifo.path)
    data = fifo.finish()
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(os.lstat(fifo.path).st_mode), "the FIFO was replaced"
    assert data.startswith(WRITERS[writer][1]) and len(data) > 200
    assert leftovers(fifo.path.parent) == []


def null_device(tmp_path: Path) -> str:
    """/dev/null; as root, a private device node like it in tmp: a broken parallux may then replace only that."""
    if os.geteuid() != 0:
        return "/dev/null"
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.stat("/dev/null").st_rdev)
    return str(node)


@pytest.mark.parametrize("writer", ["report", "csv"])
def test_output_onto_a_character_device_writes_into_it(run: tuple[Path, str], tmp_path: Path, writer: str) -> None:
    device = null_device(tmp_path)
    before = os.lstat(device)
    done = write_to(run, writer, device)
    assert done.returncode == 0, done.stderr
    after = os.lstat(device)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_output_onto_a_directory_is_a_usage_error_naming_it(run: tuple[Path, str], tmp_path: Path,
                                                            writer: str) -> None:
    target = tmp_path / "a-directory"
    target.mkdir()
    (target / "kept").write_text("kept")
    done = write_to(run, writer, target)
    assert done.returncode == 2, done.stderr
    assert f"{target}: is a directory" in done.stderr and ".tmp" not in done.stderr
    assert (target / "kept").read_text() == "kept" and leftovers(tmp_path) == []


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_output_into_a_missing_directory_is_a_usage_error_naming_it(run: tuple[Path, str], tmp_path: Path,
                                                                    writer: str) -> None:
    target = tmp_path / "no" / "such" / "out.file"
    done = write_to(run, writer, target)
    assert done.returncode == 2, done.stderr
    assert str(target) in done.stderr and f"{tmp_path / 'no' / 'such'} does not exist" in done.stderr
    assert ".tmp" not in done.stderr and not (tmp_path / "no").exists()


@pytest.mark.parametrize("writer", ["report", "trace"])
def test_output_onto_a_link_is_refused_and_neither_link_nor_destination_changes(
        run: tuple[Path, str], tmp_path: Path, writer: str) -> None:
    destination = tmp_path / "precious.txt"
    destination.write_text("precious")
    link = tmp_path / "out.link"
    link.symlink_to(destination)
    done = write_to(run, writer, link)
    assert done.returncode == 2, done.stderr
    assert f"{link}: is a symbolic link (to {destination})" in done.stderr
    assert os.readlink(link) == str(destination) and destination.read_text() == "precious"
    assert leftovers(tmp_path) == []


def test_output_replaces_a_regular_file_whole(run: tuple[Path, str], tmp_path: Path) -> None:
    target = tmp_path / "old.csv"
    target.write_text("old content that is longer than nothing\n" * 1000)
    done = write_to(run, "csv", target)
    assert done.returncode == 0, done.stderr
    assert target.read_bytes().startswith(b"seq,name,") and b"old content" not in target.read_bytes()
    assert leftovers(tmp_path) == []


def test_report_to_stdout_with_dash(run: tuple[Path, str]) -> None:
    done = write_to(run, "report", "-")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("<!DOCTYPE html>") and done.stdout.rstrip().endswith("</html>")


# -- what: formulas, terminal escapes ------------------------------------------------------------------------


def test_csv_cells_a_spreadsheet_would_run_are_neutralised(run: tuple[Path, str], tmp_path: Path) -> None:
    target = tmp_path / "rows.csv"
    assert write_to(run, "csv", target).returncode == 0
    home, log = run
    shown = run_cli(home, "show", log, "--format", "csv")
    assert shown.returncode == 0 and shown.stdout == target.read_text()
    rows = list(csv.DictReader(io.StringIO(target.read_bytes().decode(), newline="")))  # a name holds a \r
    names = [row["name"] for row in rows]
    assert names[:len(FORMULAS)] == ["'" + name for name in FORMULAS]
    assert rows[-1]["name"] == "fails" and rows[-1]["returncode"] == "3"
    for row in rows:
        assert all(not value or value[0] not in "=+-@\t\r" for value in row.values()), row
    tsv = run_cli(home, "show", log, "--format", "tsv").stdout.splitlines()
    assert [line.split("\t")[1] for line in tsv[1:1 + len(FORMULAS)]] == \
        ["'=HYPERLINK(\"http://x.test\",\"y\")", "'+1+1", "'-2+3", "'@SUM(A1)", "'\\tTAB", "'\\rCR"]


def test_tables_escape_terminal_control_characters(run: tuple[Path, str]) -> None:
    home, log = run
    shown = run_cli(home, "show", log)
    assert shown.returncode == 0, shown.stderr
    assert "esc\\x1b]0;owned\\x07\\x1b[31mred\\x9bq" in shown.stdout
    assert "argv\\x1b[2Jhere" in shown.stdout
    assert "\\tTAB" in shown.stdout and "\\rCR" in shown.stdout
    compared = run_cli(home, "compare", log, log)
    assert compared.returncode == 0, compared.stderr
    assert "esc\\x1b]0;owned\\x07\\x1b[31mred\\x9bq" in compared.stdout
    for text in (shown.stdout, compared.stdout):
        assert not any(ord(c) < 32 and c != "\n" or 0x7f <= ord(c) < 0xa0 for c in text), repr(text)


def test_runs_table_escapes_a_config_path(tmp_path: Path) -> None:
    name = "conf\x1b[2J.py"
    write_config(tmp_path, "from parallux import goal\ngoal.local(workspace='ws')\ngoal.schd('true')\n", name=name)
    assert run_cli(tmp_path, name, "-q").returncode == 0
    listed = run_cli(tmp_path, "runs")
    assert listed.returncode == 0, listed.stderr
    assert "conf\\x1b[2J.py" in listed.stdout and "\x1b" not in listed.stdout
