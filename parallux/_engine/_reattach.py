"""A runner whose connection dropped while its launcher lives on: reconnected, its commands waiting meanwhile.

An SSH runner's launcher outlives a dropped connection for ``reconnect=`` seconds (SPEC 19). Meanwhile its
seat is down: ``alive`` is false, so the scheduler starts nothing there and what may run elsewhere does;
``reconnecting`` keeps it ``accepting``, so what can run only there waits; its running commands wait for
their ends; transfers wait for it (``Seat.wait_up``). Its pipe's ``Reattachment`` connects again with backoff
and attaches a new channel to the launcher; the client then goes on over it (``LauncherClient.serve``): the launcher
replays the events it kept, parallux sends again the requests it never got, and the seat is up again. If
that fails for the grace, or the run ends first, the client gives up and its commands end ``error``.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import trio

from .._errors import RunnerError
from .._protocol import LauncherClient
from .._transports._base import Pipe


class Seat(Protocol):
    """What reattaching knows of a seat (``_seat.Seat``, which imports this module)."""

    name: str
    handle: Any
    facts: dict[str, Any]
    pipe: Pipe | None
    client: LauncherClient | None
    alive: bool
    closing: bool
    reconnecting: str | None
    reattaching: trio.CancelScope | None

    def publish(self) -> None: ...

    def describe(self) -> str: ...


async def stay_attached(seat: Seat, changed: Callable[[], None], tell: Callable[..., None]) -> None:
    """While the seat's client is only down, reconnect and go on over the new channel; else give up."""
    client, rejoin = seat.client, seat.pipe.reattachment if seat.pipe is not None else None
    assert client is not None
    while client.down is not None and not seat.closing and rejoin is not None:
        why, began = client.down, trio.current_time()
        seat.alive, seat.reconnecting = False, why
        seat.publish()
        tell("connection_lost", seat.handle, reason=why, reconnect=rejoin.reconnect)
        changed()
        failed = "the run ended before the connection came back"
        assert client.redelivery is not None
        with trio.CancelScope() as seat.reattaching:
            try:
                streams, attached = await rejoin.reattach(
                    seat.name, seat.facts["attach"], client.redelivery.seq, began + rejoin.reconnect)
                failed = ""
            except RunnerError as exc:
                failed = str(exc)
        seat.reattaching = None
        if failed:
            seat.reconnecting = None
            seat.publish()
            client.lost(f"{why}; {failed.removeprefix(seat.describe() + ': ')}")
            tell("not_reconnected", seat.handle, reason=client.gone)
            return
        async with trio.open_nursery() as nursery:
            await nursery.start(client.serve, (*streams, attached))
            seat.alive, seat.reconnecting = True, None
            seat.publish()
            tell("reconnected", seat.handle, seconds=round(trio.current_time() - began, 3),
                 launcher=attached.get("pid"))
            changed()  # its queue and retries start again
    if client.down is not None:  # (it dropped as the run was closing: nothing will reattach it)
        client.lost(client.down)


def resumable(seat: Seat) -> bool:
    """Whether a seat's launcher, whose stream just ended, may be reached again (its connection dropped)."""
    rejoin = seat.pipe.reattachment if seat.pipe is not None else None
    return rejoin is not None and rejoin.dropped() and not seat.closing
