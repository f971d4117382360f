"""Text from a run (names, commands, paths, stderr) made safe to print on a terminal.

A command's name or path may hold any character, and a terminal obeys some of them: ESC starts a sequence
that can move the cursor, clear the screen, set the window title, or hide what follows; BEL, backspace and
carriage return rewrite the line. The tables and summaries of ``parallux runs|show|compare`` and the live
display's running commands show such a character escaped as Python writes it (``\\x1b``, ``\\r``), as the
run's failure summary does for names (there with ``repr``). A leaf module (it imports nothing of parallux),
so the views may use it.
"""

from __future__ import annotations

import re
from typing import Sequence

# C0 controls, DEL and C1 controls (0x9b is a one-byte CSI to some terminals); and the same bytes of a name
# that was not UTF-8, which a view writes back as the raw bytes (errors="surrogateescape").
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\udc80-\udc9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with every control character escaped (``\\x1b``, ``\\n``); unchanged when it has none."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_escape, text)


def printable_all(texts: Sequence[str]) -> Sequence[str]:
    """``printable`` of each (a table's column: one search of the whole column when, as nearly always, none
    of its cells needs escaping)."""
    if _CONTROL.search(" ".join(texts)) is None:
        return texts
    return [printable(text) for text in texts]


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or f"\\x{ord(char) & 0xff:02x}"
