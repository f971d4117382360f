"""How a duration is written for people, the same in the live display, the summary and the views."""

from __future__ import annotations


def format_seconds(seconds: float) -> str:
    """``12.3 s``, ``5m03s``, ``2h05m``: as precise as a glance at a long run needs."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
