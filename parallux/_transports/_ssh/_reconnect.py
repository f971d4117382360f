"""Reconnecting an SSH runner whose connection dropped: attempts with backoff, within the grace.

Each attempt connects as the first connection did (the same options, a new ProxyCommand if any) and
attaches a new channel to the launcher (``_attach``). An attempt that cannot connect, or whose bridge does
not answer, is tried again after a growing pause; a launcher that refuses (it is gone: its grace ran out,
it was killed, the machine rebooted) ends the reconnection at once, as does the grace running out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable

import trio

from ..._errors import RunnerError
from ._attach import Refused

if TYPE_CHECKING:
    from ._channel import LauncherChannel, LauncherOutput

BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds before the 2nd, 3rd, ... attempt
BACKOFF_MAX = 15.0                   # and then between attempts

Attempt = Callable[[], Awaitable["tuple[LauncherChannel, LauncherOutput, dict[str, Any]]"]]


async def reconnect(attempt: Attempt, description: str, grace: float,
                    until: float) -> tuple[LauncherChannel, LauncherOutput, dict[str, Any]]:
    """``attempt()`` until one attaches, pausing BACKOFF between them, until ``until`` (Trio's clock)."""
    pauses = iter(BACKOFF)
    last = "none could be made"
    while True:
        with trio.move_on_at(until) as scope:
            try:
                return await attempt()
            except RunnerError as exc:
                last = str(exc).removeprefix(f"{description}: ")
            except Refused as exc:
                raise RunnerError(f"{description}: its launcher cannot be reattached: {exc}") from None
        if scope.cancelled_caught:
            last = "still under way when the time was up"
        pause = next(pauses, BACKOFF_MAX)
        if trio.current_time() + pause >= until:
            break
        await trio.sleep(pause)
    raise RunnerError(f"{description}: not reconnected within reconnect={grace:g} s (the last attempt: {last})")
