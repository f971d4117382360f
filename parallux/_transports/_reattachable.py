"""What a transport whose launcher outlives a dropped connection adds to the seam (an SSH runner's)."""

from __future__ import annotations

from typing import Any

from ._base import Streams


class Reattachable:
    """A transport that can reach its launcher again after its connection dropped, the launcher having run
    on meanwhile (see "reattaching" in ``_launcher.py``): the seat then reconnects instead of ending the
    launcher's commands (``_engine._reattach``)."""

    reconnect = 0.0  # seconds a dropped connection is tried again for (its launcher waits as long); 0: never

    def dropped(self) -> bool:
        """Whether the stream that just ended was cut by its connection, the launcher being alive for all we
        know (and so perhaps reattached), rather than ended by the launcher's own end."""
        raise NotImplementedError

    async def reattach(self, name: str, point: dict[str, Any], seq: int,
                       until: float) -> tuple[Streams, dict[str, Any]]:
        """Connect again and attach to the launcher that said hello with ``point`` (where it waits), trying
        until ``until`` (Trio's clock); the new streams and the launcher's ``attached`` answer (what it got of
        the requests). ``seq``: the last of its events processed. RunnerError when that fails for good."""
        raise NotImplementedError
