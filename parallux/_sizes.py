"""How a size in bytes is written for people, the same in the summary and the views (a leaf: the views
import it)."""

from __future__ import annotations


def format_size(count: int) -> str:
    """``64 MiB``, ``1.5 GiB``, ``512 KiB``: exact where the size is a whole number of its unit."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= factor:
            value = count / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{count} bytes"
