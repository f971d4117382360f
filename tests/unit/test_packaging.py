"""The packaging metadata stays in the forms that build without deprecation warnings, and the editable
install stays a plain path (fast start-up)."""

from __future__ import annotations

import sysconfig
import tomllib
from pathlib import Path

from tests.helpers import REPO


def test_packaging_license_is_an_spdx_string_with_a_setuptools_that_reads_it() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert isinstance(project["project"]["license"], str)  # the table form is deprecated
    requires = project["build-system"]["requires"]
    assert any(r.replace(" ", "").startswith("setuptools>=") and int(r.split(">=")[1].split(".")[0]) >= 77
               for r in requires), requires


def test_packaging_setup_asks_for_no_deprecated_editable_mode() -> None:
    assert "editable_mode" not in (REPO / "scripts" / "setup").read_text()


def test_packaging_editable_install_is_a_plain_path_not_an_import_hook() -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    pth = list(site.glob("__editable__.parallux-*.pth"))
    if not pth:  # not an editable install of this checkout (a wheel, say): nothing to check
        return
    assert pth[0].read_text().strip() == str(REPO)
    assert not list(site.glob("__editable___parallux_*_finder.py"))


def pins() -> dict[str, str]:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    return {name.lower().replace("_", "-"): version for name, _, version in
            (line.partition("==") for line in lines if line and not line.startswith("#"))}


def test_packaging_lock_pins_every_dependency_and_setup_installs_with_it() -> None:
    import re
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    names = {re.match(r"[A-Za-z0-9_.-]+", spec)[0].lower().replace("_", "-") for spec in wanted}
    locked = pins()
    assert names <= set(locked), f"not locked: {sorted(names - set(locked))}"
    assert "pip" in locked
    setup = (REPO / "scripts" / "setup").read_text()
    assert "-c constraints.txt" in setup and "--build-constraint build-constraints.txt" in setup
    backend = (REPO / "build-constraints.txt").read_text()
    assert re.search(r"^setuptools==\d", backend, re.M)


def test_packaging_discovers_every_package_of_the_tree() -> None:
    """The package list is found, not written by hand (a listed one lacked the Slurm transport); the built
    wheel itself is checked by scripts/test-wheel."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "packages" in setuptools and "find" in setuptools["packages"]
    assert setuptools["packages"]["find"]["include"] == ["parallux", "parallux.*"]
