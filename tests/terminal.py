"""What a terminal shows of the CLI's output: escape sequences stripped, and the variables that would override
rich's terminal detection.
"""

from __future__ import annotations

import re

CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# Variables that would make rich guess differently from a plain xterm.
RICH_OVERRIDES = ("NO_COLOR", "FORCE_COLOR", "COLORTERM", "COLUMNS", "LINES", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def screen_lines(raw: str) -> list[str]:
    """The lines as they end up on screen: escapes dropped, a carriage return rewrites its line."""
    return [line.rsplit("\r", 1)[-1] for line in CSI.sub("", raw.replace("\r\n", "\n")).split("\n")]
