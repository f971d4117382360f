"""The engine's side of the launcher protocol: JSON lines over any pair of Trio byte streams.

This is the one seam between the engine and every runner: a local runner hands it the pipes of a launcher
child process, an SSH runner the ends of one SSH channel, and a test double an in-memory stream. The client
never knows which. See ``_launcher.py`` for the messages. File transfers (``_transfer.py``) are requests
too: frames of raw file data, each announced by its line (``"bytes": N``), and the events of a transfer go
to that transfer's own channel (:meth:`LauncherClient.open_transfer`).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import trio

from ._errors import RunnerError
from ._jsonline import dumps_line, loads
from ._launcher import Frames
from ._redelivery import Redelivery
from ._outbox import Outbox, descriptor_of
from ._status import Status
from ._turn import NO_TURN, Turn


WATCHDOG = 60.0  # seconds of silence after which a launcher stops everything it started
READ_SIZE = 1 << 18  # bytes asked of the stream at once (file data comes in frames of up to 512 KiB)
TRANSFER_EVENTS = ("walk", "data", "ack", "end")
ANSWERS = ("exit", "error", "records", "environment", "load", "probe")  # events that end the request of their id
TransferEvent = tuple[dict[str, Any], bytes | None]  # an event of a transfer, and its payload (file data)
# A new channel to a reattached launcher: its streams and the launcher's answer.
Reattached = tuple[trio.abc.SendStream, trio.abc.ReceiveStream, dict[str, Any]]


class Job:
    """A command the launcher was asked to run, and what it has said about it so far."""

    __slots__ = ("done", "_event", "exit_event", "on_end")

    def __init__(self) -> None:
        self.done = False
        self._event: trio.Event | None = None  # made for a task that waits (most commands have none: see on_end)
        self.exit_event: dict[str, Any] | None = None  # "exit" or "error"; None if the launcher went away
        self.on_end: Callable[[Job], None] | None = None  # told once it ended (a command no task waits for)

    @property
    def ended(self) -> trio.Event:
        """Set once it ended (made when first asked for: a Trio event costs a command that no task waits for)."""
        if self._event is None:
            self._event = trio.Event()
            if self.done:
                self._event.set()
        return self._event

    def end(self) -> None:
        if not self.done:
            self.done = True
            if self._event is not None:
                self._event.set()
            if self.on_end is not None:
                self.on_end(self)


class LauncherClient:
    """Sends requests to one launcher and routes its events to the jobs waiting for them."""

    def __init__(self, send_stream: trio.abc.SendStream, receive_stream: trio.abc.ReceiveStream,
                 description: str, watchdog: float = WATCHDOG, hello: dict[str, Any] | None = None,
                 turn: Turn = NO_TURN) -> None:
        """``turn``: the engine's (``_turn``): the ends a read of events brings are settled in the reader's task."""
        self.description = description
        self.hello_options = hello or {}  # what the transport asks of the launcher beside the watchdog
        self.watchdog = watchdog
        self._closed = False   # our end is closed (quit, or the writer ended): nothing more is sent
        self._send_stream = send_stream
        self._receive_stream = receive_stream
        self.turn = turn
        self._outbox = Outbox(descriptor_of(send_stream))
        self._jobs: dict[int, Job] = {}
        self._transfers: dict[int, trio.MemorySendChannel[TransferEvent]] = {}
        self._next_id = 0
        self.templates: dict[Any, int] = {}  # run templates this launcher holds, by spec (see _engine._request)
        self._hello: dict[str, Any] | None = None
        self._hello_event = trio.Event()
        self._pongs: list[trio.Event] = []
        self.gone: str | None = None
        self.stopped: str | None = None  # why the launcher, ending unasked, stopped its commands (their events say)
        # A launcher that can be reattached (its hello said where) outlives a dropped connection: then the
        # client is only ``down`` (why) and its jobs wait (see ``lost``). ``may_resume`` is the seat's.
        self.redelivery: Redelivery | None = None
        self.down: str | None = None
        self.drops = 0  # connections dropped under it so far (a transfer cut short by one is tried again)
        self.may_resume: Callable[[], bool] = lambda: False

    # -- lifetime ----------------------------------------------------------------------------------------

    async def serve(self, reattached: Reattached | None = None,
                    task_status: trio.TaskStatus[dict[str, Any]] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the reader and writer until the stream ends; report the launcher's hello when it arrives.
        ``reattached``: go on over a new channel to the same launcher, whose answer says the last request it
        got: what it never got goes first. Once they end -- also when they are cancelled (the seat refused the
        launcher) -- whoever waits for an answer is woken, with none, unless the launcher may be reattached."""
        if reattached is not None:
            assert self.redelivery is not None
            self._send_stream, self._receive_stream, answer = reattached
            self._outbox = Outbox(descriptor_of(self._send_stream))
            self._closed, self.down = False, None
            for data in self.redelivery.after(int(answer["got"])):
                self._outbox.put(data)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_loop)
                nursery.start_soon(self._read_loop, nursery.cancel_scope)
                if reattached is None:
                    self.post({"op": "hello", "watchdog": self.watchdog, **self.hello_options})
                    with trio.move_on_after(60):
                        await self._hello_event.wait()
                if self._hello is None:
                    nursery.cancel_scope.cancel()
                    raise RunnerError(f"{self.description}: the launcher did not start"
                                      + (f" ({self.gone})" if self.gone else ""))
                nursery.start_soon(self._keep_alive)
                task_status.started(self._hello)
        finally:
            self.lost("the connection to the launcher was closed", reattachable=True)

    async def _keep_alive(self) -> None:
        """Ping the launcher well within its watchdog, so that only a parallux that is gone -- or cut off by
        a connection that died without closing -- lets the watchdog fire."""
        while self.gone is None and self.down is None:
            await trio.sleep(self.watchdog / 6)
            await self.ping()

    def post(self, message: dict[str, Any], payload: bytes | None = None) -> None:
        """Send a request: written at once to a stream that is a plain descriptor, else queued for the writer
        task, which writes what one turn of the engine's loop queued in one write (see ``Outbox``). With a
        payload (file data) the request is a frame: its line says ``"bytes": N`` and the N bytes follow."""
        if self.gone is not None or self._closed and self.down is None:  # e.g. a second Ctrl-C's hard quit
            return                                                       # after quit(): dropped
        if payload is not None:
            message = dict(message, bytes=len(payload))
        if self.redelivery is not None:
            data = self.redelivery.encode(message)
            if self.down is not None:  # a numbered request goes once the launcher is reattached, others never
                return
        else:
            data = dumps_line(message)
        if not self._outbox.put(data, payload):  # the reader closed it as the stream ended (a transfer's abort on the
            self._closed = True         # way out, say): nothing can be sent any more

    async def quit(self, grace: float | None = None) -> None:
        """Ask the launcher to stop everything (TERM, ``grace`` or its default, KILL) and exit, then close our
        end."""
        self.post({"op": "quit"} if grace is None else {"op": "quit", "grace": grace})
        self._closed = True
        self._outbox.close()

    def quit_now(self) -> None:
        """A second Ctrl-C: the launcher kills everything at once (no grace) and exits."""
        self.post({"op": "quit", "grace": 0})

    async def _write_loop(self) -> None:
        try:
            while (data := await self._outbox.take()) is not None:
                await self._send_stream.send_all(data)
                self._outbox.writing = False
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.lost(f"cannot write to the launcher: {exc}", reattachable=True)
        finally:
            self._closed = True  # nothing may follow: the stream is closed below
            self._outbox.fd = None  # (nor be written to its descriptor, whose number may be reused)
            with trio.CancelScope(shield=True):
                try:
                    await self._send_stream.aclose()
                except Exception:
                    pass

    async def _read_loop(self, scope: trio.CancelScope) -> None:
        frames = Frames(loads)
        try:
            while True:
                chunk = await self._receive_stream.receive_some(READ_SIZE)
                if not chunk:
                    break
                with self.turn:  # (the ends heard are settled as it ends, in one scheduling pass)
                    for event, payload in frames.feed(chunk):
                        if isinstance(event, ValueError):
                            raise event
                        self._dispatch(event, payload)
            self.lost("the launcher exited", reattachable=True)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.lost(f"connection lost: {exc}", reattachable=True)
        finally:
            self._outbox.close()
        scope.cancel()

    def lost(self, why: str, reattachable: bool = False) -> None:
        """The stream ended under the client: the launcher is gone, and what waits for it ends -- unless
        ``reattachable`` and the seat says it may be reached again (``may_resume``: its connection dropped).
        Then the client is only ``down``, its jobs wait, until it goes on over a new channel (``serve``) or
        the seat gives up (``lost(why)``)."""
        if reattachable and self.redelivery is not None and self.gone is None and self.may_resume():
            if self.down is None:
                self.down, self.drops = why, self.drops + 1
        else:
            self.down, self.gone = None, self.gone or why
            for job in self._jobs.values():
                job.end()
        self._hello_event.set()
        for pong in self._pongs:
            pong.set()
        for channel in self._transfers.values():
            channel.close()  # its transfer then sees the end of its events without an "end": lost
        self._transfers.clear()

    def _dispatch(self, event: dict[str, Any], payload: bytes | None = None) -> None:
        if self.redelivery is not None and not self.redelivery.fresh(event):
            return  # (had come already: an attach replays only what was not acknowledged, but cheap to be sure)
        kind = event.get("ev")
        if event.get("id") in self._transfers and (kind in TRANSFER_EVENTS or kind == "error"):
            self._to_transfer(event, payload)
        elif kind == "hello":
            self._hello = event
            if event.get("attach"):  # it can be reattached: number what must arrive, acknowledge what came
                self.redelivery = Redelivery()
            self._hello_event.set()
        elif kind == "pong":
            pongs, self._pongs = self._pongs, []
            for pong in pongs:
                pong.set()
        elif kind in ANSWERS:  # ("started" is not asked for: see quiet_start)
            job = self._jobs.pop(event["id"], None)
            if job is not None:
                job.exit_event = event
                job.end()
            self.stopped = self.stopped or event.get("stopped")

    # -- requests ----------------------------------------------------------------------------------------

    def run(self, *, argv: list[str], env: dict[str, str], work_dir: str | None, workspace: str | None,
            cwd: str | None, command_text: str, mark: str, record: dict[str, Any],
            metrics: dict[str, str | None] | None = None, cpus: list[int] | None = None,
            memory: int | None = None) -> tuple[int, Job]:
        """Ask the launcher to run a command; the returned job's ``ended`` fires when it has ended. parallux
        counts a command as started when it sends this (``quiet_start``: no "started" event). The launcher
        follows no link between ``workspace`` and ``work_dir``. ``metrics``: the command's metrics= (name ->
        pattern, or None for one its metrics file must give), which its launcher reads when it exits 0.
        ``cpus``: the CPUs it is spawned on (a lease's, where the launcher itself was moved off them);
        ``memory`` limits the command's whole tree (bytes, swap off: the launcher's cgroups)."""
        request = {"op": "run", "argv": argv, "env": env, "work_dir": work_dir, "workspace": workspace,
                   "cwd": cwd, "command_text": command_text, "quiet_start": True, "mark": mark, "record": record}
        if metrics:
            request["metrics"] = metrics
        if cpus is not None:
            request["cpus"] = cpus
        if memory is not None:
            request["memory"] = memory
        return self.ask(request, own=True)

    def move(self, cpus: list[int] | None) -> None:
        """The launcher, and the commands it starts without a lease's CPUs, run on ``cpus`` from now on (None:
        on every CPU it may use)."""
        self.post({"op": "affinity", "cpus": cpus})

    def ask(self, request: dict[str, Any], own: bool = False) -> tuple[int, Job]:
        """Post a request under a new id. The job's ``ended`` fires when the launcher's event for that id
        comes (exit, error, records) -- or when the launcher is gone, with no event. ``own``: the request
        was made for this call, and takes its id itself (not a copy of it)."""
        self._next_id += 1
        job = Job()
        if self.gone is not None:
            job.end()
            return self._next_id, job
        self._jobs[self._next_id] = job
        if own:
            request["id"] = self._next_id
        self.post(request if own else dict(request, id=self._next_id))
        return self._next_id, job

    async def answer(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The launcher's one answer to a request (``records``, ``environment``, ``load``, ``probe``, under a
        new id); None when the launcher went away first."""
        _, job = self.ask(request)
        await job.ended.wait()
        return job.exit_event

    def open_transfer(self, request: dict[str, Any]) -> tuple[int, trio.MemoryReceiveChannel[TransferEvent]]:
        """Post the first request of a file transfer under a new id; the transfer's events (pages, data
        frames, acks, its end) arrive, with their payloads, on the returned channel, which simply ends if
        the launcher goes away. The transfer's flow control is its own business (see ``_transfer``)."""
        self._next_id += 1
        # Unbounded, but a launcher sends a transfer only what the transfer asked for (window and credit).
        send, receive = trio.open_memory_channel[TransferEvent](math.inf)
        if self.gone is not None or self.down is not None:  # (a transfer is not kept for a reattached launcher)
            send.close()
        else:
            self._transfers[self._next_id] = send
            self.post(dict(request, id=self._next_id))
        return self._next_id, receive

    def close_transfer(self, transfer: int) -> None:
        """Stop routing a transfer's events (it ended, or is given up: then its launcher is told to abort)."""
        channel = self._transfers.pop(transfer, None)
        if channel is not None:
            channel.close()
            self.post({"op": "abort", "id": transfer})

    def _to_transfer(self, event: dict[str, Any], payload: bytes | None) -> None:
        transfer = event["id"]
        self._transfers[transfer].send_nowait((event, payload))
        if event["ev"] in ("end", "error"):
            self._transfers.pop(transfer).close()

    def forget(self, job_id: int) -> None:
        """Stop tracking a job whose end the launcher never confirmed (its runner is being given up)."""
        self._jobs.pop(job_id, None)

    def kill(self, job_id: int, grace: float, reason: str = "cancelled") -> None:
        self.post({"op": "kill", "id": job_id, "grace": grace, "reason": reason})

    async def ping(self) -> bool:
        """Round trip through the launcher; False when it is gone (or its connection)."""
        pong = trio.Event()
        self._pongs.append(pong)
        self.post({"op": "ping"})
        await pong.wait()
        return self.gone is None and self.down is None


async def read_records(client: LauncherClient, paths: list[str], workspace: str | None = None
                       ) -> list[dict[str, Any] | None]:
    """The completion records (result.json) at these paths on the launcher's machine, in one round trip;
    None for each that is missing or not a record (or reached through a link below ``workspace``).
    Raises RunnerError if the launcher cannot answer."""
    event = await client.answer({"op": "records", "paths": paths, "workspace": workspace})
    if event is None or event.get("ev") != "records" or len(event.get("records") or ()) != len(paths):
        why = client.gone or (event or {}).get("message") or "no answer"
        raise RunnerError(f"{client.description}: cannot read completion records: {why}")
    return [record if isinstance(record, dict) else None for record in event["records"]]


def outcome_of(event: dict[str, Any]) -> dict[str, Any]:
    """A command's "exit" (or "error") event as the fields of its Result."""
    if event["ev"] == "error":
        return {"status": Status.ERROR, "error": event.get("message"), "kind": event.get("reason")}
    return {"status": Status(event["status"]), "returncode": event["returncode"], "start_time": event["start"],
            "end_time": event["end"], "signal": event.get("signal"), "user_seconds": event.get("user_seconds"),
            "system_seconds": event.get("system_seconds"), "max_rss_kb": event.get("max_rss_kb"),
            "stderr_tail_text": event.get("stderr_tail"), "error": event.get("error"),
            "kind": event.get("reason"), "metrics": event.get("metrics")}

