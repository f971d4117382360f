"""A Trio loop in a worker thread, and the calls into it from the main thread."""

from __future__ import annotations

import threading
from typing import Any, Awaitable, Callable, TypeVar

import trio

from .. import _forks

T = TypeVar("T")


class LoopThread:
    """The thread of one ``trio.run``; :meth:`_main` is what runs in it (a subclass's)."""

    def __init__(self, clock: trio.abc.Clock | None) -> None:
        self.clock = clock
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._thread_main, name="parallux-engine", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._crash is not None:
            raise self._crash

    def _thread_main(self) -> None:
        try:
            trio.run(self._run, clock=self.clock)
        except BaseException as exc:  # surfaced to the main thread by join() and by every waiter
            self._crash = exc
            self._crashed(exc)
        finally:
            self._ready.set()
            self._stopped.set()
            self._ended()

    async def _run(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        await self._main()

    async def _main(self) -> None:
        """What the loop runs; it sets ``self._ready`` once calls may come in."""
        raise NotImplementedError

    def _crashed(self, exc: BaseException) -> None:
        """The loop ended with an exception."""

    def _ended(self) -> None:
        """The thread is ending (whichever way)."""

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a synchronous function in the engine thread and return its result."""
        self._check_alive()
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def call_async(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        self._check_alive()
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def _check_alive(self) -> None:
        _forks.refuse()  # a child the config forked has no engine thread: the call would never return
        if self._crash is not None:
            raise RuntimeError("the parallux engine stopped") from self._crash

    def _from_main(self, fn: Callable[..., Any], *args: Any) -> None:
        """``call``, for the end of a run: nothing to do once the loop has ended."""
        if self._thread is None or self._stopped.is_set():
            return
        try:
            self.call(fn, *args)
        except trio.RunFinishedError:
            pass

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the engine thread to end. Waits on an event, not ``Thread.join``: a KeyboardInterrupt
        inside ``join`` can leave CPython believing a still-running thread has stopped."""
        return self._stopped.wait(timeout)
