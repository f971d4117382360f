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
