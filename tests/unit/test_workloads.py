"""workloads(): globs to stable work paths, and every input mistake caught at the call."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from parallux._errors import ConfigError
from parallux._workloads import Workload, workloads

SUITES = {"gcc": ["ref", "test"], "mcf": ["ref"]}
TRACES = ["trace1", "trace2"]


def make_tree(root: Path) -> list[Path]:
    """inputs/spec/<suite>/<bench>/<trace>.gz, created in a deliberately unsorted order."""
    created = []
    for suite in reversed(list(SUITES)):
        for bench in reversed(SUITES[suite]):
            for trace in reversed(TRACES):
                path = root / "inputs" / "spec" / suite / bench / f"{trace}.gz"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"")
                created.append(path)
    return created


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_workloads_seed_example(tree: Path) -> None:
    found = workloads("inputs/spec/*/*/*.gz", levels=3, work_prefix="smt-perf-test", strip_suffix=True)

    expected_rel = [f"{suite}/{bench}/{trace}" for suite in sorted(SUITES) for bench in sorted(SUITES[suite])
                    for trace in TRACES]
    assert [w.relpath for w in found] == expected_rel
    assert found[0] == Workload(
        input_path=str(tree / "inputs/spec/gcc/ref/trace1.gz"),
        relpath="gcc/ref/trace1",
        work_relpath="smt-perf-test/gcc/ref/trace1",
        name="gcc_ref_trace1",
    )
    assert all(os.path.isabs(w.input_path) and os.path.isfile(w.input_path) for w in found)
    assert [w.input_path for w in found] == sorted(w.input_path for w in found)
    assert [w.work_relpath for w in found] == [f"smt-perf-test/{rel}" for rel in expected_rel]
    assert [w.name for w in found] == [rel.replace("/", "_") for rel in expected_rel]


def test_workloads_spec_example_levels_keep_last_components(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "a/b/c/d")
    monkeypatch.chdir(tmp_path)

    [found] = workloads("a/b/c/d", levels=3)

    assert (found.relpath, found.work_relpath, found.name) == ("b/c/d", "b/c/d", "b_c_d")


def test_workloads_keeps_suffix_by_default(tree: Path) -> None:
    found = workloads("inputs/spec/gcc/ref/*.gz", levels=2)

    assert [w.relpath for w in found] == ["ref/trace1.gz", "ref/trace2.gz"]
    assert found[0].name == "ref_trace1.gz"


def test_workloads_list_of_patterns_deduplicated(tree: Path) -> None:
    found = workloads(["inputs/spec/gcc/*/*.gz", "inputs/spec/*/ref/trace1.gz",
                       str(tree / "inputs/spec/gcc/ref/trace1.gz"), "inputs/spec/gcc/../gcc/ref/trace2.gz"],
                      levels=3)

    assert [w.relpath for w in found] == ["gcc/ref/trace1.gz", "gcc/ref/trace2.gz", "gcc/test/trace1.gz",
                                          "gcc/test/trace2.gz", "mcf/ref/trace1.gz"]


def test_workloads_plain_path_accepted(tree: Path) -> None:
    [found] = workloads(Path("inputs/spec/mcf/ref/trace2.gz"), levels=2, strip_suffix=True)

    assert found.input_path == str(tree / "inputs/spec/mcf/ref/trace2.gz")
    assert (found.relpath, found.name) == ("ref/trace2", "ref_trace2")


def test_workloads_recursive_glob(tree: Path) -> None:
    found = workloads("inputs/**/trace2.gz", levels=3)

    assert [w.relpath for w in found] == ["gcc/ref/trace2.gz", "gcc/test/trace2.gz", "mcf/ref/trace2.gz"]


def test_workloads_relative_to_current_directory(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree / "inputs" / "spec" / "mcf")

    [found] = workloads("ref/trace1.gz", levels=3)

    assert found.input_path == str(tree / "inputs/spec/mcf/ref/trace1.gz")
    assert found.relpath == "mcf/ref/trace1.gz"


@pytest.mark.parametrize(("prefix", "expected"), [
    ("", "gcc/ref/trace1"),
    (".", "gcc/ref/trace1"),
    ("runs/smt", "runs/smt/gcc/ref/trace1"),
    ("runs//smt/./", "runs/smt/gcc/ref/trace1"),
])
def test_workloads_work_prefix_normalised(tree: Path, prefix: str, expected: str) -> None:
    found = workloads("inputs/spec/gcc/ref/trace1.gz", levels=3, work_prefix=prefix, strip_suffix=True)

    assert found[0].work_relpath == expected


@pytest.mark.parametrize(("filename", "stripped"), [
    ("a.tar.gz", "a.tar"),
    ("plain", "plain"),
    (".hidden", ".hidden"),
])
def test_workloads_strip_suffix_drops_only_last_suffix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       filename: str, stripped: str) -> None:
    touch(tmp_path / "in.d" / filename)
    monkeypatch.chdir(tmp_path)

    [found] = workloads(f"in.d/{filename}", levels=2, strip_suffix=True)

    assert found.relpath == f"in.d/{stripped}"


def test_workloads_name_replaces_unsafe_characters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "my suite" / "b+c" / "x:1.gz")
    monkeypatch.chdir(tmp_path)

    [found] = workloads("my suite/*/*", levels=3, strip_suffix=True)

    assert found.relpath == "my suite/b+c/x:1"
    assert found.name == "my_suite_b_c_x_1"


def test_workloads_deterministic(tree: Path) -> None:
    first = workloads(["inputs/spec/*/*/*.gz", "inputs/spec/gcc/ref/trace1.gz"], levels=3, work_prefix="p")
    again = workloads(["inputs/spec/*/*/*.gz", "inputs/spec/gcc/ref/trace1.gz"], levels=3, work_prefix="p")
    reordered = workloads(["inputs/spec/gcc/ref/trace1.gz", "inputs/spec/*/*/*.gz"], levels=3, work_prefix="p")

    assert first == again == reordered
    assert len(first) == 6


@pytest.mark.parametrize("levels", [0, -1])
def test_workloads_levels_below_one_rejected(tree: Path, levels: int) -> None:
    with pytest.raises(ConfigError, match=rf"levels must be >= 1, not {levels}"):
        workloads("inputs/spec/*/*/*.gz", levels=levels)


@pytest.mark.parametrize("levels", [True, 2.0, "3", None])
def test_workloads_levels_not_int_rejected(tree: Path, levels: object) -> None:
    with pytest.raises(ConfigError, match=r"levels must be an int >= 1, not"):
        workloads("inputs/spec/*/*/*.gz", levels=levels)  # type: ignore[arg-type]


def test_workloads_levels_required(tree: Path) -> None:
    with pytest.raises(ConfigError, match="missing the argument 'levels'"):  # SPEC 11: never a TypeError
        workloads("inputs/spec/*/*/*.gz")  # type: ignore[call-arg]


def test_workloads_too_few_components_rejected(tree: Path) -> None:
    path = tree / "inputs/spec/gcc/ref/trace1.gz"
    levels = len(path.parts) + 1  # the root '/' is a part but not a component

    with pytest.raises(ConfigError) as info:
        workloads(str(path), levels=levels)

    message = str(info.value)
    assert str(path) in message
    assert f"has {levels - 2} components, fewer than levels={levels}" in message


@pytest.mark.parametrize("prefix", ["/abs/runs", "/"])
def test_workloads_absolute_prefix_rejected(tree: Path, prefix: str) -> None:
    with pytest.raises(ConfigError, match=rf"work_prefix must be relative, not '{prefix}'"):
        workloads("inputs/spec/*/*/*.gz", levels=3, work_prefix=prefix)


@pytest.mark.parametrize("prefix", ["..", "runs/../..", "runs/..", "../runs"])
def test_workloads_prefix_with_dotdot_rejected(tree: Path, prefix: str) -> None:
    with pytest.raises(ConfigError, match=r"work_prefix must not contain '\.\.'") as info:
        workloads("inputs/spec/*/*/*.gz", levels=3, work_prefix=prefix)

    assert repr(prefix) in str(info.value)


def test_workloads_prefix_with_dots_in_names_accepted(tree: Path) -> None:
    found = workloads("inputs/spec/gcc/ref/trace1.gz", levels=1, work_prefix="v1..2/...")

    assert found[0].work_relpath == "v1..2/.../trace1.gz"


def test_workloads_collision_after_strip_suffix_names_both(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "in" / "x.gz")
    touch(tmp_path / "in" / "x.bz2")
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigError) as info:
        workloads("in/*", levels=2, strip_suffix=True)

    message = str(info.value)
    assert str(tmp_path / "in" / "x.gz") in message
    assert str(tmp_path / "in" / "x.bz2") in message
    assert "both map to work_relpath 'in/x'" in message


def test_workloads_collision_from_too_few_levels(tree: Path) -> None:
    with pytest.raises(ConfigError, match=r"both map to work_relpath 'trace1\.gz'"):
        workloads("inputs/spec/*/*/trace1.gz", levels=1)


def test_workloads_glob_matching_nothing_rejected(tree: Path) -> None:
    with pytest.raises(ConfigError, match=r"pattern 'inputs/spec/\*/\*/\*\.xz' matches no file"):
        workloads(["inputs/spec/*/*/*.gz", "inputs/spec/*/*/*.xz"], levels=3)


def test_workloads_missing_plain_path_rejected(tree: Path) -> None:
    with pytest.raises(ConfigError, match=r"input path 'inputs/spec/gcc/ref/trace9\.gz' does not exist"):
        workloads("inputs/spec/gcc/ref/trace9.gz", levels=3)


@pytest.mark.parametrize("patterns", [[], ()])
def test_workloads_empty_pattern_list_rejected(tree: Path, patterns: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"no patterns given"):
        workloads(patterns, levels=3)


@pytest.mark.parametrize("patterns", [b"inputs/*", 3, [""], ["inputs/*", None]])
def test_workloads_bad_pattern_type_rejected(tree: Path, patterns: object) -> None:
    with pytest.raises(ConfigError, match=r"patterns? must be"):
        workloads(patterns, levels=3)  # type: ignore[arg-type]


def test_workloads_prefix_not_str_rejected(tree: Path) -> None:
    with pytest.raises(ConfigError, match=r"work_prefix must be a str, not PosixPath"):
        workloads("inputs/spec/*/*/*.gz", levels=3, work_prefix=Path("runs"))  # type: ignore[arg-type]
