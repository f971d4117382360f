"""A function run in a forked child while the parent goes on: ``compare`` reads its two runs at once (each
log of 10,000 benchmarks x 10 repetitions takes a couple of seconds to read, on a core of its own)."""

from __future__ import annotations

import os
import pickle
from typing import Any, Callable


def in_child(function: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """Start ``function(*args)`` in a child; the returned callable waits for its result (or raises what it
    raised). Where a fork is refused, it runs here, when its result is asked for."""
    try:
        reading, writing = os.pipe()
        pid = os.fork()
    except OSError:
        return lambda: function(*args)
    if pid == 0:  # the child: the result, or the exception, pickled into the pipe, then gone at once
        os.close(reading)
        status = 0
        try:
            try:
                data = pickle.dumps((True, function(*args)))
            except BaseException as exc:  # noqa: BLE001 - the parent raises it
                data = pickle.dumps((False, exc))
            with os.fdopen(writing, "wb") as pipe:
                pipe.write(data)
        except BaseException:  # noqa: BLE001 - nothing to tell it with: the parent sees a short read
            status = 1
        finally:
            os._exit(status)
    os.close(writing)

    def result() -> Any:
        with os.fdopen(reading, "rb") as pipe:
            data = pipe.read()
        os.waitpid(pid, 0)
        if not data:
            raise RuntimeError("the process reading a run ended without an answer")
        ok, value = pickle.loads(data)
        if not ok:
            raise value
        return value
    return result
