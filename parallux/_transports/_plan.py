"""The plan transport: a launcher inside parallux that runs nothing.

It speaks the launcher protocol over in-memory streams, so the engine drives it exactly as it drives a real
launcher. With the default outcome it is the dry run: every command "takes" one virtual second (the engine
of a dry run runs on Trio's autojumping MockClock) and ends ``planned``; transfers end at once, ``planned``;
completion records are read where the runner's files are this machine's. With another ``outcome`` it is
the engine's test double (tests/plan_engine.py): ``outcome(request) -> (seconds, status, returncode)``.
"""

from __future__ import annotations

import json
import math
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

import trio

from .._launcher import Frames, RunTemplates, read_work_record
from ._base import Pipe, Transport

Outcome = Callable[[dict[str, Any]], tuple[float, str, "int | None"]]
TRANSFERS = ("walk", "put", "get")


def planned(request: dict[str, Any]) -> tuple[float, str, int | None]:
    """One virtual second, the earlier submitted first (the mark's ``<seq>``): the same plan on every dry run."""
    return 1 + int(request["mark"].rsplit(".", 2)[1]) * 1e-6, "planned", None


class PlanTransport(Transport):
    """In place of ``real`` (whose kind, name and files it keeps)."""

    def __init__(self, real: Transport, *, facts: dict[str, Any] | None = None, outcome: Outcome = planned) -> None:
        self.real, self.kind, self.outcome = real, real.kind, outcome
        self.facts = facts  # None: the real one's, asked at the hello (where the launcher's machine_root is)
        self.runs: dict[int, trio.CancelScope] = {}
        self.templates = RunTemplates()  # (what a run's requests share: they stand for the full requests)
        self.kills: dict[int, str] = {}  # request id -> why it was stopped

    def describe(self, name: str) -> str:
        return self.real.describe(name)

    @asynccontextmanager
    async def open(self, name: str) -> AsyncIterator[Pipe]:
        import trio.testing  # (it imports pytest: only a dry run or a test pays for it)
        to_launcher, requests = trio.testing.memory_stream_one_way_pair()
        events, from_launcher = trio.testing.memory_stream_one_way_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve, requests, events)
            yield Pipe(to_launcher, from_launcher)
            nursery.cancel_scope.cancel()

    async def _serve(self, requests: trio.abc.ReceiveStream, events: trio.abc.SendStream) -> None:
        (out, queue), frames = trio.open_memory_channel[dict[str, Any]](math.inf), Frames()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_write, queue, events)
            while chunk := await requests.receive_some():
                for request, _payload in frames.feed(chunk):
                    if request.get("op") == "quit":
                        nursery.cancel_scope.cancel()
                    self._answer(request, out, nursery)
            nursery.cancel_scope.cancel()  # EOF: nothing runs on
        await events.aclose()  # and the client sees the launcher's end

    def _answer(self, request: dict[str, Any], out: trio.MemorySendChannel[dict[str, Any]],
                nursery: trio.Nursery) -> None:
        op, job = request.get("op"), request.get("id")
        if op == "hello":
            facts = self.facts if self.facts is not None else self.real.plan_facts(request.get("machine_root"))
            out.send_nowait({"ev": "hello", "protocol": 1, "pid": 0, "guardian": 0, **facts})
        elif op == "ping":
            out.send_nowait({"ev": "pong"})
        elif op == "template":
            self.templates.define(request)
        elif op == "run":
            nursery.start_soon(self._run, self.templates.expand(request) if "tpl" in request else request, out)
        elif op == "kill" and job in self.runs:
            self.kills[job] = request.get("reason") or "cancelled"
            self.runs[job].cancel()
        elif op == "records":
            read = read_work_record if self.kind == "local" else (lambda path, workspace: None)
            out.send_nowait({"ev": "records", "id": job,
                             "records": [read(p, request.get("workspace")) for p in request["paths"]]})
        elif op in TRANSFERS:
            out.send_nowait({"ev": "end", "id": job, "planned": True})

    async def _run(self, request: dict[str, Any], out: trio.MemorySendChannel[dict[str, Any]]) -> None:
        seconds, status, returncode = self.outcome(request)
        start = trio.current_time()
        with trio.CancelScope() as scope:
            self.runs[request["id"]] = scope
            await trio.sleep(seconds)
        del self.runs[request["id"]]
        if scope.cancelled_caught:
            status, returncode = self.kills[request["id"]], -15
        out.send_nowait({"ev": "exit", "id": request["id"], "status": status, "returncode": returncode,
                         "start": None if status == "planned" else start, "killed": scope.cancelled_caught,
                         "end": None if status == "planned" else trio.current_time()})


async def _write(queue: trio.MemoryReceiveChannel[dict[str, Any]], events: trio.abc.SendStream) -> None:
    """What queued up goes out in one write, as a real launcher flushes its events once per turn of its loop."""
    async for event in queue:
        batch = [event] + [queue.receive_nowait() for _ in range(queue.statistics().current_buffer_used)]
        await events.send_all(b"".join((json.dumps(e) + "\n").encode() for e in batch))
