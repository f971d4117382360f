"""The documentation keeps up with the code: every public name is in docs/reference.md, every link resolves.

The lists of names are read from the code itself (``__all__``, the classes, the option tables, the argument
parser), so adding a method, a field, an option or a CLI flag without documenting it fails here.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import parallux
from parallux import Command, Group, Result, Runner, RunnerStatus, Workload
from parallux._cli import SUBCOMMANDS, build_parser
from parallux._views.subcommands import build_parsers
from parallux._exit import EXIT_FAILED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE
from parallux._goal import Goal
from parallux._status import FINISHED_STATUSES
from parallux._command_options import COMMAND, COMMAND_OPTIONS
from parallux._option import Options
from parallux._runner_options import RUNNER, SLURM, SSH, SSH_OPTIONS
from parallux._runner import SshRunner
from tests.helpers import REPO

REFERENCE = REPO / "docs" / "reference.md"
DOCUMENTS = sorted([REPO / "README.md", REPO / "README.zh-CN.md", *(REPO / "docs").glob("*.md")])
SOURCES = sorted((REPO / "parallux").rglob("*.py"))

FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
TOKEN = re.compile(r"--?[A-Za-z][\w-]*|\w+")
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")


def reference_text() -> str:
    return REFERENCE.read_text(encoding="utf-8")


def code_tokens(text: str) -> set[str]:
    """Every identifier or option written in code (inline spans and fenced blocks)."""
    spans = INLINE_CODE.findall(FENCE.sub("", text)) + [m.group(0) for m in FENCE.finditer(text)]
    return {token for span in spans for token in TOKEN.findall(span)}


def public_methods(cls: type) -> list[str]:
    return sorted(name for name in dir(cls)
                  if not name.startswith("_") and callable(getattr(cls, name))
                  and not isinstance(getattr(cls, name), property))


def public_attributes(cls: type) -> list[str]:
    """Slots, properties and methods not starting with '_'."""
    names = set(getattr(cls, "__slots__", ())) | {n for n in dir(cls) if not n.startswith("_")}
    return sorted(n for n in names if not n.startswith("_"))


def assert_in_code(names: list[str] | tuple[str, ...], what: str) -> None:
    assert names, f"no {what} found in the code: the test is looking in the wrong place"
    tokens = code_tokens(reference_text())
    missing = [name for name in names if name not in tokens]
    assert not missing, f"{what} missing from docs/reference.md: {missing}"


def assert_called(names: list[str], what: str) -> None:
    """Methods must appear as calls, ``name(``, not merely as a word."""
    assert names, f"no {what} found in the code"
    text = reference_text()
    missing = [name for name in names if not re.search(rf"\b{re.escape(name)}\(", text)]
    assert not missing, f"{what} not documented as calls in docs/reference.md: {missing}"


# -- public names --------------------------------------------------------------------------------------------


def test_docs_reference_names_everything_in_all() -> None:
    assert_in_code(list(parallux.__all__), "names of parallux.__all__")


def test_docs_reference_names_every_goal_method() -> None:
    assert_called(public_methods(Goal), "Goal methods")
    assert_in_code(["argv", "args"], "goal attributes")


def test_docs_reference_names_every_runner_method() -> None:
    assert_called(public_methods(Runner), "Runner methods")
    assert_called(public_methods(SshRunner), "SshRunner methods")


def test_docs_reference_names_every_status_field() -> None:
    assert_in_code([f.name for f in dataclasses.fields(RunnerStatus)], "RunnerStatus fields")


def test_docs_reference_names_every_handle_result_and_group_member() -> None:
    assert_in_code(public_attributes(Result), "Result fields")
    assert_in_code(public_attributes(Command), "command handle fields")
    assert_called(public_methods(Group), "Group methods")
    assert_in_code(public_attributes(Group), "Group members")
    assert_in_code([f.name for f in dataclasses.fields(Workload)], "Workload fields")


def test_docs_reference_names_every_result_status() -> None:
    text = reference_text()
    missing = [status for status in FINISHED_STATUSES if f'`"{status}"`' not in text]
    assert not missing, f"statuses without an entry in docs/reference.md: {missing}"


def test_docs_reference_names_every_command_and_ssh_option() -> None:
    assert_in_code(list(COMMAND_OPTIONS), "command options")
    assert_in_code(list(SSH_OPTIONS), "SSH runner options")


def option_table(marker: str) -> list[tuple[str, str, str]]:
    """(name, type, default) of each option of the first table after ``marker``; a row naming several options
    (`` `a`, `b` ``) gives each the row's type and default."""
    text = reference_text()
    assert marker in text, f"no {marker!r} in docs/reference.md"
    lines = text.split(marker, 1)[1].splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("| Option |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows += [(name, cells[1], cells[2]) for name in re.findall(r"`(\w+)`", cells[0])]
    return rows


@pytest.mark.parametrize(("marker", "table"), [
    ("## Command options", COMMAND), ("### Runner options", RUNNER), ("SSH runners take, in addition:", SSH),
    ("### Slurm runners", SLURM)], ids=["command", "runner", "ssh", "slurm"])
def test_docs_reference_option_tables_are_the_specs(marker: str, table: Options) -> None:
    documented = option_table(marker)
    assert [name for name, _, _ in documented] == list(table.names)  # the same options, in the same order
    defined = [(o.name, o.doc_type + (", keyword-only" if o.keyword_only and table is RUNNER else ""),
                o.doc_default) for o in table]
    assert documented == defined


def test_docs_reference_names_every_cli_option_and_exit_status() -> None:
    options = [s for action in build_parser()._actions for s in action.option_strings]
    assert_in_code(options, "CLI options")
    section = reference_text().split("### Exit status", 1)[1].split("\n## ", 1)[0]
    for status in (EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM):
        assert f"| `{status}` |" in section, f"exit status {status} has no row in the exit status table"


def test_docs_reference_names_every_subcommand_and_its_options() -> None:
    parsers = build_parsers()
    assert tuple(parsers) == SUBCOMMANDS
    text = reference_text()
    section = text.split("## Looking at runs", 1)[1].split("\n## ", 1)[0]
    for name, parser in parsers.items():
        assert f"parallux {name}" in section, f"parallux {name} has no usage line under Looking at runs"
        options = [s for action in parser._actions for s in action.option_strings]
        missing = [option for option in options if option not in code_tokens(section)]
        assert not missing, f"options of parallux {name} missing from Looking at runs: {missing}"


def test_docs_reference_names_every_field_of_the_views() -> None:
    from parallux._views.compare import COMPARE_FIELDS
    from parallux._views.show import COMMAND_FIELDS
    from parallux._views.report import ATTEMPT_FIELDS, COMMAND_FIELDS as REPORT_COMMAND_FIELDS
    section = reference_text().split("## Looking at runs", 1)[1].split("\n## ", 1)[0]
    tokens = code_tokens(section)
    for fields, what in ((COMMAND_FIELDS, "show"), (COMPARE_FIELDS, "compare"),
                         (REPORT_COMMAND_FIELDS, "report commands"), (ATTEMPT_FIELDS, "report attempts")):
        missing = [f for f in fields if f not in tokens]
        assert not missing, f"fields of {what} missing from Looking at runs: {missing}"


def test_docs_reference_names_every_environment_variable() -> None:
    names = sorted({name for path in SOURCES for name in re.findall(r"PARALLUX_[A-Z_]+", path.read_text())})
    assert_in_code(names, "environment variables")


def test_docs_reference_names_every_run_log_event() -> None:
    engine = "".join(path.read_text() for path in (REPO / "parallux" / "_engine").glob("*.py"))
    runlog = (REPO / "parallux" / "_runlog.py").read_text()
    events = set(re.findall(r'observe\("(\w+)"', engine)) | set(re.findall(r'"event": "(\w+)"', runlog + engine))
    assert {"machine", "probe", "noise", "machine_load"} <= events  # (the engine's own records are found)
    assert_in_code(sorted(events), "run log events")


# -- links -------------------------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", text, re.MULTILINE)}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_docs_relative_links_point_to_existing_files(document: Path) -> None:
    assert document.exists()
    text = FENCE.sub("", document.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (document.parent / file_part).resolve() if file_part else document
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(target)
    assert not broken, f"broken links in {document.relative_to(REPO)}: {broken}"


def test_docs_every_document_is_checked() -> None:
    names = {p.relative_to(REPO).as_posix() for p in DOCUMENTS}
    assert {"README.md", "README.zh-CN.md", "docs/guide.md", "docs/reference.md", "docs/design.md"} <= names
