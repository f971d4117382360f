"""One transfer's conversation with a launcher: its requests and events, under the id its first request got.

The requests are described in ``_launcher.py`` ("files"); ``_transfer`` holds the conversations (put, get,
walk, read). A dry run's launcher (``_transports._plan``) ends every transfer at once, ``planned``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from ._quickcheck import Failed

if TYPE_CHECKING:
    from ._protocol import LauncherClient, TransferEvent


class Planned(Exception):
    """The launcher is a dry run's (``_transports._plan``): it copies nothing."""


class Exchange:
    """The requests and events of one transfer, under the id its first request got. Leaving the ``with``
    before the launcher ended it tells the launcher to abort it (its temporary files are removed)."""

    def __init__(self, client: LauncherClient, request: dict[str, Any]) -> None:
        self.client = client
        self.id, self._events = client.open_transfer(request)
        self.ended = False

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.ended:
            self.client.close_transfer(self.id)

    def post(self, request: dict[str, Any], payload: bytes | None = None) -> None:
        self.client.post(dict(request, id=self.id), payload)

    async def next(self) -> TransferEvent:
        """The transfer's next event; its end with an error, or a lost connection, raises Failed."""
        try:
            return self._checked(await self._events.receive())
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise self._lost() from None

    def ready(self) -> list[TransferEvent]:
        """The events that have arrived already, up to and including an end (checked as next() does)."""
        events: list[TransferEvent] = []
        while not self.ended:
            try:
                events.append(self._checked(self._events.receive_nowait()))
            except trio.WouldBlock:
                break
            except (trio.EndOfChannel, trio.ClosedResourceError):
                raise self._lost() from None
        return events

    def _lost(self) -> Failed:
        self.ended = True
        return Failed(f"the connection to the launcher was lost ({self.client.gone or 'it went away'})")

    def _checked(self, item: TransferEvent) -> TransferEvent:
        event, payload = item
        if event["ev"] in ("end", "error"):
            self.ended = True
            if event.get("planned"):
                raise Planned()
            if event["ev"] == "error" or event.get("error"):
                raise Failed(event.get("error") or event.get("message") or "the launcher failed",
                             event.get("errno"))
        return event, payload
