"""Every collected test has exactly one layer, the one its directory says (tests/layers.py), checked on the
whole suite collected in this process: an integration test, as importing every test module starts processes
(ctypes asking ldconfig where a library is). What the directories hold and what unit tests name is checked
without collecting, in tests/unit/test_layout.py."""

from __future__ import annotations

from typing import Any

import pytest

from tests import layers
from tests.helpers import REPO


class Collected:
    """A plugin recording each collected test: its marks and file."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = [{"id": item.nodeid, "directory": layers.directory_layer(item.path),
                       "marks": {mark.name for mark in item.iter_markers()} & set(layers.LAYERS)}
                      for item in session.items]


@pytest.fixture(scope="module")
def suite() -> list[dict[str, Any]]:
    collected = Collected()
    assert pytest.main(["--collect-only", "-qq", "-p", "no:cacheprovider", str(REPO / "tests")],
                       plugins=[collected]) == 0
    assert len(collected.items) > 500
    return collected.items


def test_layout_every_test_has_exactly_one_layer(suite: list[dict[str, Any]]) -> None:
    assert [error for item in suite for error in layers.layer_errors(item["id"], item["directory"],
                                                                     item["marks"])] == []
    assert [item["id"] for item in suite if ("unit" in item["marks"]) == ("integration" in item["marks"])] == []
    # the unit layer is tests/unit/, exactly
    assert [item["id"] for item in suite if ("unit" in item["marks"]) != (item["directory"] == "unit")] == []
