"""What must cross a dropped connection to a launcher that is reattached: numbered requests, acknowledged events.

A launcher that can be reattached (an SSH runner's, see "reattaching" in ``_launcher.py``) keeps the events
parallux must see -- exits, errors, records, each numbered ``seq`` -- until parallux acknowledges them
(``ack``), and replays the rest after an attach. The other way round, parallux numbers the requests that
must arrive (``n``: run, kill, records, affinity), keeps each until an event of the launcher says it got it
(``got``), and sends the rest again after an attach. So neither side loses or doubles anything when the
connection drops between a write and its arrival. Transfers and pings are not kept: a transfer cut short
is tried again whole, a ping means nothing on another connection.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ._jsonline import dumps_line
from ._launcher import RELIABLE_OPS


class Redelivery:
    """One launcher's numbered requests not yet confirmed, and the last of its events processed."""

    def __init__(self) -> None:
        self.sent = 0           # the number of the last numbered request
        self.seq = 0            # the number of the last event processed
        self._kept: deque[tuple[int, bytes]] = deque()  # (n, the request's line), oldest first

    def encode(self, message: dict[str, Any]) -> bytes:
        """A request's line: numbered (and kept) if it must arrive; each numbered one and each ping also
        acknowledges the events processed so far, so that the launcher keeps no more of them."""
        op = message.get("op")
        if op in RELIABLE_OPS:
            self.sent += 1
            message = dict(message, n=self.sent, ack=self.seq)
        elif op == "ping":
            message = dict(message, ack=self.seq)
        data = dumps_line(message)
        if op in RELIABLE_OPS:
            self._kept.append((self.sent, data))
        return data

    def fresh(self, event: dict[str, Any]) -> bool:
        """Take an event's confirmation of requests (``got``); whether it is new (its ``seq``, if numbered,
        is past the last processed)."""
        got = event.get("got")
        if got is not None:
            self.confirm(got)
        seq = event.get("seq")
        if seq is None:
            return True
        if seq <= self.seq:
            return False
        self.seq = seq
        return True

    def confirm(self, got: int) -> None:
        kept = self._kept
        while kept and kept[0][0] <= got:
            kept.popleft()

    def after(self, got: int) -> list[bytes]:
        """The numbered requests the launcher did not get (it got every one up to ``got``), to send again."""
        self.confirm(got)
        return [data for _, data in self._kept]
