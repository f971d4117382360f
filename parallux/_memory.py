"""Memory sizes: the ``memory=`` command option (bytes, or ``"512M"``, ``"2G"``, ``"64K"``). How a size is
shown (``64 MiB``) is ``_sizes.format_size``, a leaf the views import.

The suffixes are binary, as the kernel's own ``memory.max`` and ``memory.limit_in_bytes`` take them: ``K``
is 1024 bytes, ``M`` 1024 K, and so on; ``KB``/``KiB``, ``MB``/``MiB`` ... mean the same.
"""

from __future__ import annotations

import re

from ._errors import ConfigError

UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
SMALLEST = 1 << 20  # less than a MiB is no limit for a process tree (a shell alone is more): a unit forgotten
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)


def memory_limit(value: object, what: str = "memory") -> int | None:
    """A memory limit in bytes from an int or a string with a unit; None for None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{what} must be a positive number of bytes (int) or a size such as '512M' or '2G', "
                          f"not {value!r}")
    if isinstance(value, int):
        size = value
    else:
        size = _parse(value, what)
    if size <= 0:
        raise ConfigError(f"{what} must be a positive number of bytes, not {value!r}")
    if size < SMALLEST:
        hint = f" (was {value}M, {value} MiB, meant?)" if isinstance(value, int) or value.strip().isdigit() else ""
        raise ConfigError(f"{what}={value!r} is {size} bytes: a limit must be at least 1 MiB, no process tree "
                          f"fits in less{hint}")
    return size


def _parse(text: str, what: str) -> int:
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ConfigError(f"{what}={text!r} is not a size: give bytes (int), or a number with K, M, G or T "
                          f"(binary: '512M', '2G', '1.5G')")
    number, unit = match.group(1), match.group(2).upper()
    return int(float(number) * UNITS[unit]) if "." in number else int(number) * UNITS[unit]  # (bytes: round down)
