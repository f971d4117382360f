"""The layout tells the architecture (issue 14): imports point one way, modules and classes stay small.

Every import counts: at the top, inside functions, and under ``TYPE_CHECKING`` -- a circle drawn only for
the type checker is still a circle a reader has to untangle.
"""

from __future__ import annotations

import ast
import io
import subprocess
import tokenize
from pathlib import Path

import pytest

from tests import layers
from tests.helpers import REPO

PACKAGE = REPO / "parallux"
MODULE_LIMIT = 400      # lines; the launcher is exempt: one self-contained file, sent verbatim to hosts
METHOD_LIMIT = 20       # methods of one class
TEST_DOUBLE_LIMIT = 80  # lines of code of the plan transport, the engine's test double


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {module for module in found if module in known and module != name}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_layout_has_no_import_circle() -> None:
    known = modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert graph["parallux._pool"] >= {"parallux._engine._seat", "parallux._runner"}  # the parser sees imports
    assert circles(graph) == []


def test_layout_import_circle_check_can_fail() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layout_modules_stay_small() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert sizes["parallux._launcher"] > MODULE_LIMIT  # (the one exception)
    assert {name: size for name, size in sizes.items()
            if size > MODULE_LIMIT and name != "parallux._launcher"} == {}


def test_layout_classes_stay_small() -> None:
    big = {}
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
                if len(methods) > METHOD_LIMIT and name != "parallux._launcher":
                    big[f"{name}.{node.name}"] = len(methods)
    assert big == {}


def code_lines(path: Path) -> int:
    """Lines holding code: not blank, not only a comment, not a docstring."""
    tree = ast.parse(path.read_text())
    docstrings = {node.body[0].lineno for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str)}
    doc_lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and node.lineno in docstrings:
            doc_lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                              tokenize.ENDMARKER) and token.start[0] not in doc_lines:
            lines.add(token.start[0])
    return len(lines)


def test_layout_the_engines_test_double_is_small() -> None:
    assert code_lines(PACKAGE / "_transports" / "_plan.py") <= TEST_DOUBLE_LIMIT


# -- tests by layer (tests/layers.py): the directory is the layer ---------------------------------------------

# what a unit test must not name, in its body or in any function, class or fixture of its file it reaches:
# the helpers and fixtures that start the real CLI, launcher, sshd, Slurm or Chromium
STARTERS = {"run_cli", "start_cli", "subprocess", "PtyProcess", "pexpect", "Chromium", "start_sshd",
            "start_slurm", *layers.FIXTURES}
# what starts the parts of the other integration layers: a test naming one is not a local test
ELSEWHERE = {"start_sshd", "start_slurm", "Chromium", *layers.FIXTURES}
# what no unit test file imports: the modules that start the real parts
UNIT_NEVER_IMPORTS = {"subprocess", "pexpect", "tests.sshd", "tests.slurm", "tests.browser"}
ON_PURPOSE = {"test_layout.py::test_layout_a_unit_test_that_starts_a_process_fails",  # the guard's own test
              "test_layout.py::test_layout_the_unit_check_can_fail",  # names them to see the check find them
              "test_layout.py::test_layout_local_tests_start_no_sshd_slurm_or_browser"}  # names what it allows
TESTS = REPO / "tests"


def suite_files(under: Path = TESTS) -> list[Path]:
    return sorted(under.rglob("test_*.py"))


def test_layout_every_test_file_lies_in_its_layers_directory() -> None:
    files = suite_files()
    assert len(files) > 50
    assert [str(path.relative_to(REPO)) for path in files if layers.directory_layer(path) is None] == []
    # every directory on the way is a package: same-named modules of two layers must not clash
    packages = {path.parent for path in files} | {path.parent.parent for path in files} - {TESTS.parent}
    assert [str(d.relative_to(REPO)) for d in sorted(packages) if not (d / "__init__.py").exists()] == []


def definitions(tree: ast.Module) -> dict[str, ast.AST]:
    """The module's functions and classes, and its test classes' methods, by name."""
    found: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found[node.name] = node
        if isinstance(node, ast.ClassDef):
            found.update({n.name: n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))})
    return found


def names_reached(tree: ast.Module, start: list[str]) -> set[str]:
    """Every name, attribute and string the named definitions hold, following the module's own definitions."""
    defined, reached, todo = definitions(tree), set(start), list(start)
    while todo:
        name = todo.pop()
        for node in ast.walk(defined[name]) if name in defined else ():
            word = (node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute)
                    else node.arg if isinstance(node, ast.arg)
                    else node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None)
            if word is not None and word not in reached:
                reached.add(word)
                todo.append(word)
    return reached


def reaching(directory: Path, names: set[str]) -> dict[str, list[str]]:
    """The tests of the files in ``directory`` that reach any of ``names`` (a fixture they ask for is an
    argument, so a name they reach), with the names they reach."""
    found = {}
    for path in suite_files(directory):
        tree = ast.parse(path.read_text())
        for test in (name for name in definitions(tree) if name.startswith("test_")):
            if f"{path.name}::{test}" not in ON_PURPOSE and (named := names_reached(tree, [test]) & names):
                found[f"{path.relative_to(REPO)}::{test}"] = sorted(named)
    return found


def imported(tree: ast.Module) -> set[str]:
    return ({alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
            | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module})


def test_layout_unit_tests_name_nothing_that_starts_processes() -> None:
    assert reaching(TESTS / "unit", STARTERS) == {}
    assert {str(path.relative_to(REPO)): sorted(imported(ast.parse(path.read_text())) & UNIT_NEVER_IMPORTS)
            for path in suite_files(TESTS / "unit") if path.name != "test_layout.py"
            and imported(ast.parse(path.read_text())) & UNIT_NEVER_IMPORTS} == {}


def test_layout_local_tests_start_no_sshd_slurm_or_browser() -> None:
    """A test that starts (or asks for) the sshd, Slurm or Chromium lies in that layer's directory. A local
    test's SSH case may ask for the sshd (``request.getfixturevalue``): its parameter marks it (layers.py)."""
    assert reaching(TESTS / "integration" / "local", ELSEWHERE - {"sshd_server"}) == {}


def test_layout_the_unit_check_can_fail() -> None:
    tree = ast.parse("def helper():\n    return run_cli('x')\n\ndef test_a():\n    helper()\n\n"
                     "def test_b(sshd_server):\n    pass\n\ndef test_c():\n    return 'run_cli'\n")
    assert "run_cli" in names_reached(tree, ["test_a"])
    assert "sshd_server" in names_reached(tree, ["test_b"])
    assert "run_cli" in names_reached(tree, ["test_c"])  # a string too: request.getfixturevalue("sshd_server")
    assert names_reached(tree, ["test_b"]) & STARTERS == {"sshd_server"}
    assert imported(ast.parse("import subprocess\nfrom tests.sshd import x\n")) & UNIT_NEVER_IMPORTS == {
        "subprocess", "tests.sshd"}
    assert layers.directory_layer(TESTS / "test_new.py") is None
    assert layers.directory_layer(TESTS / "integration" / "test_new.py") is None
    assert layers.directory_layer(TESTS / "integration" / "gpu" / "test_new.py") is None
    assert layers.directory_layer(TESTS / "unit" / "deeper" / "test_new.py") is None
    assert layers.directory_layer(TESTS / "unit" / "test_new.py") == "unit"
    assert layers.directory_layer(TESTS / "integration" / "ssh" / "test_new.py") == "ssh"
    assert layers.placed(None, (), (), ()) == set()
    assert layers.placed("unit", (), (), ()) == {"unit"}
    assert layers.placed("local", (), (), ()) == {"integration", "local"}
    assert layers.placed("local", (), (), ("ssh",)) == {"integration", "ssh"}  # a local test's SSH case
    assert layers.placed("local", ("ssh",), (), ()) == {"integration", "ssh"}  # pytest.param(..., marks=ssh)
    assert layers.placed("slurm", (), ("slurm_cluster", "sshd_server"), ()) == {"integration", "slurm", "ssh"}
    assert layers.layer_errors("t", None, set()) != []
    assert layers.layer_errors("t", "unit", layers.placed("unit", (), ("sshd_server",), ())) != []
    assert layers.layer_errors("t", "local", {"integration", "local"}) == []
    local = TESTS / "integration" / "local" / "test_x.py"
    ssh_case, local_case = ("t[ssh]", {"integration", "ssh"}), ("t[local]", {"integration", "local"})
    assert layers.strays({(local, "test_x"): [ssh_case]}) != []  # in integration/local/, but only an SSH case
    assert layers.strays({(local, "test_x"): [ssh_case, local_case]}) == []
    assert layers.unmarked("t", ["tmp_path", "sshd_server"], {"integration", "local"}) != []
    assert layers.unmarked("t", ["tmp_path", "sshd_server"], {"integration", "ssh"}) == []


def test_layout_a_unit_test_that_starts_a_process_fails(no_processes: layers.NoProcesses | None) -> None:
    assert no_processes is not None  # this test is a unit test: the guard is on
    with pytest.raises(layers.StartedAProcess):
        subprocess.run(["true"], check=True)
    assert no_processes.started == ["subprocess"]
    no_processes.started.clear()  # (refused on purpose)


# -- the transport seam (issue 22): the pipe to a launcher, and little more --------------------------------

TRANSPORT_LIMIT = 6  # public members of Transport
ENGINE = PACKAGE / "_engine"


def public_names(cls: ast.ClassDef) -> set[str]:
    """The public names a class body defines: methods, properties, class attributes."""
    names: set[str] = set()
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_")}


def transport_classes() -> dict[str, tuple[ast.ClassDef, list[str]]]:
    """Every class under _transports/, by name, with the names of its bases."""
    found = {}
    for path in (PACKAGE / "_transports").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [base.id if isinstance(base, ast.Name) else ast.unparse(base) for base in node.bases]
                found[node.name] = (node, bases)
    return found


def subclasses_of(root: str, classes: dict[str, tuple[ast.ClassDef, list[str]]]) -> set[str]:
    found: set[str] = set()
    while True:
        more = {name for name, (_, bases) in classes.items() if {root, *found} & set(bases)} - found
        if not more:
            return found
        found |= more


def called_on_a_transport(paths: list[Path]) -> dict[str, str]:
    """``X.transport.NAME`` and ``transport.NAME`` in these files: the transport members they use (-> where)."""
    used = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and (
                    isinstance(node.value, ast.Name) and node.value.id == "transport"
                    or isinstance(node.value, ast.Attribute) and node.value.attr == "transport"):
                used.setdefault(node.attr, f"{path.relative_to(REPO)}:{node.lineno}")
    return used


def test_layout_the_transport_is_a_small_seam() -> None:
    classes = transport_classes()
    seam = public_names(classes["Transport"][0])
    assert len(seam) <= TRANSPORT_LIMIT, sorted(seam)
    used = called_on_a_transport(sorted(ENGINE.rglob("*.py")))
    assert {"open", "describe"} <= set(used)  # (the parser sees the engine's calls)
    assert {name: where for name, where in used.items() if name not in seam} == {}
    subclasses = subclasses_of("Transport", classes)
    assert {"LocalTransport", "SshTransport", "SlurmTransport", "PlanTransport"} <= subclasses
    added = {name: sorted((public_names(classes[name][0]) - seam) & set(used)) for name in subclasses}
    assert {name: names for name, names in added.items() if names} == {}


def test_layout_the_engine_names_no_batch_system() -> None:
    """What the engine knows of a batch system is the ``Batch`` protocol: not Slurm, not even in a comment."""
    named = []
    for path in sorted(ENGINE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and "slurm" in (node.module or "").lower() \
                    or isinstance(node, ast.Import) and any("slurm" in a.name.lower() for a in node.names):
                named.append(f"{path.relative_to(REPO)}:{node.lineno}: import")
        for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if "slurm" in token.string.lower():
                named.append(f"{path.relative_to(REPO)}:{token.start[0]}: {token.string.strip()[:60]}")
    assert named == []


def test_layout_the_seam_checks_can_fail() -> None:
    module = ast.parse("class Transport:\n    kind = 'x'\n    def open(self): ...\n    def _hidden(self): ...\n"
                       "class Other(Transport):\n    def extra(self): ...\n")
    transport, other = (node for node in module.body if isinstance(node, ast.ClassDef))
    assert public_names(transport) == {"kind", "open"}
    assert public_names(other) == {"extra"}
    assert subclasses_of("Transport", {"Transport": (transport, []), "Other": (other, ["Transport"])}) == {"Other"}


# -- options written once (issue 22) -------------------------------------------------------------------------

OPTION_DEFINITIONS = {"parallux._command_options", "parallux._runner_options"}


def option_families() -> dict[str, frozenset[str]]:
    from parallux._command_options import COMMAND
    from parallux._runner_options import RUNNER, SLURM, SSH
    return {"command": frozenset(COMMAND.names), "runner": frozenset((RUNNER + SSH).names) | set(SLURM.names)}


def option_lists(tree: ast.AST, families: dict[str, frozenset[str]]) -> list[tuple[int, str, list[str]]]:
    """The literals that list options by hand: a tuple, list or set of strings, a dict's keys or a call's
    keywords naming 3 or more options of one family, which are most of its names. (A result's or a log
    record's fields that share a few names with the options -- ``name``, ``cores`` -- are not options.)"""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            names = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        elif isinstance(node, ast.Dict):
            names = [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
        elif isinstance(node, ast.Call):
            names = [keyword.arg for keyword in node.keywords if keyword.arg is not None]
        else:
            continue
        for family, options in families.items():
            hits = [name for name in names if name in options]
            if len(hits) >= 3 and 2 * len(hits) > len(names):
                found.append((node.lineno, family, hits))
    return found


def test_layout_options_are_spelled_once() -> None:
    """Each command and runner option is written in one definition (``_command_options``,
    ``_runner_options``); everything else reads the tables. The views are exempt: they read run logs, whose
    fields are a file format that logs of earlier versions keep."""
    families = option_families()
    listed = {f"{name}:{line}": (family, hits) for name, path in modules().items()
              if name not in OPTION_DEFINITIONS and not name.startswith("parallux._views")
              for line, family, hits in option_lists(ast.parse(path.read_text()), families)}
    assert listed == {}


def test_layout_options_check_can_fail() -> None:
    families = option_families()
    code = ("A = ('threads', 'cores', 'timeout')\nB = {'name': 1, 'runner': 2, 'cores': 3, 'host': 4}\n"
            "C = ('name', 'runner', 'cores', 'host', 'status', 'end')\nf(workspace=1, max_jobs=2, core_pool=3)\n")
    assert option_lists(ast.parse(code), families) == [
        (1, "command", ["threads", "cores", "timeout"]), (2, "command", ["name", "runner", "cores"]),
        (4, "runner", ["workspace", "max_jobs", "core_pool"])]


# -- the main thread reads what the engine publishes (issue 22) -----------------------------------------------

# The modules of the config's and the display's threads that hold seats, and what they may read of one: its
# published view and load (_runner_view), its allocators' figures (under the machine's lock), its name, and
# its handle (set by the main thread itself, before the engine has the seat). Anything else a seat holds is
# the engine thread's, written while it runs.
HANDLE_MODULES = ("_runner.py", "_slurm_runner.py", "_registration.py", "_resume.py", "_pool.py", "_session.py",
                  "_runlog.py", "_runner_options.py", "_live.py", "_progress.py", "_goal.py", "_submission.py")
HANDLE_FUNCTIONS = {"_transfer.py": "remote_path"}  # (the rest of _transfer runs in the engine thread)
SEAT_READS = {"view", "load", "allocator", "resources", "name", "handle"}
SEAT_COLLECTIONS = {"seats", "_seats", "_node_seats", "candidates"}
ENGINE_CALLS = {"call", "call_async", "_in_engine_thread"}  # a seat's method handed to these runs in the engine


def _is_seat(node: ast.AST) -> bool:
    """``seat``, ``x._seat``, or an item of a seat collection (``runner._seats[0]``)."""
    if isinstance(node, ast.Name):
        return node.id == "seat"
    if isinstance(node, ast.Attribute):
        return node.attr == "_seat"
    if isinstance(node, ast.Subscript):
        collection = node.value
        return (isinstance(collection, ast.Name) and collection.id in SEAT_COLLECTIONS
                or isinstance(collection, ast.Attribute) and collection.attr in SEAT_COLLECTIONS)
    return False


def seat_reads(tree: ast.AST, where: str) -> list[str]:
    """Attribute reads (and writes) on a seat beyond what the main thread may touch, as ``where:line: .attr``."""
    handed_to_the_engine = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if called in ENGINE_CALLS:
                handed_to_the_engine.add(id(node.args[0]))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_seat(node.value) and id(node) not in handed_to_the_engine:
            allowed = {"handle"} if isinstance(node.ctx, ast.Store) else SEAT_READS
            if node.attr not in allowed:
                found.append((node.lineno, f"{where}:{node.lineno}: .{node.attr}"))
    return [text for _, text in sorted(found)]


def test_layout_handles_read_only_published_runner_state() -> None:
    found = []
    for name in HANDLE_MODULES:
        found += seat_reads(ast.parse((PACKAGE / name).read_text()), name)
    for name, function in HANDLE_FUNCTIONS.items():
        tree = ast.parse((PACKAGE / name).read_text())
        found += seat_reads(next(node for node in tree.body if getattr(node, "name", None) == function), name)
    assert found == []


def test_layout_the_runner_state_check_can_fail() -> None:
    source = ("seat.alive\nself._seat.facts['x']\nrunner._seats[0].host\nseat.view.max_jobs\nseat.load.active\n"
              "engine.call_async(seat.records, dirs)\nseat.quarantined = 'x'\nseat.handle = self\n")
    assert seat_reads(ast.parse(source), "m") == ["m:1: .alive", "m:2: .facts", "m:3: .host", "m:7: .quarantined"]
