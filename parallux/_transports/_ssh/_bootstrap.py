"""Starting the launcher on the remote host: one command, whatever the login shell, nothing installed.

The launcher (``_launcher.py``) travels zlib-compressed and base64-encoded as the payload argument of
``<python> -E -S -c "<boot>" <payload>``, and the boot program holds no character any login shell would
touch.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import trio

from ..._errors import RunnerError
from .._boot import TOO_OLD_STATUS, boot_command
from ._channel import EXIT_WAIT, HELLO_WAIT, LauncherChannel, LauncherOutput
from ._connect import reason
from ._patches import asyncssh

DEFAULT_PYTHONS = ("/usr/bin/python3", "python3")  # the launcher's interpreter without a python= option


async def start_launcher(conn: Any, aio: Callable[..., Callable[..., Awaitable[Any]]], python: str | None,
                         description: str) -> tuple[LauncherChannel, LauncherOutput, str]:
    """Start the launcher with the first interpreter that runs it, and hear its hello.

    Without a ``python`` option, ``/usr/bin/python3`` comes first: ``python3`` on a login PATH is often a
    version manager's shim (pyenv's costs ~0.1 s per start), while the launcher needs only some Python
    >= 3.6 with its standard library. If that fails to start the launcher, ``python3`` is tried."""
    candidates = [python] if python is not None else list(DEFAULT_PYTHONS)
    failures: list[str] = []
    for interpreter in candidates:
        try:
            _, pipe = await aio(conn.create_session)(
                LauncherChannel, boot_command(interpreter), encoding=None, request_pty=False)
        except (OSError, asyncssh.Error) as exc:
            raise RunnerError(f"{description}: cannot open a session for the launcher: {reason(exc)}") from None
        output = LauncherOutput(pipe, description)
        heard = await output.hear_hello()
        if heard == "hello":
            return pipe, output, interpreter
        if heard == "silent":  # a hang, not a missing interpreter: another one would hang as well
            pipe.channel.close()
            said = pipe.stderr_text()
            raise RunnerError(f"{description}: the launcher ({interpreter!r}) did not answer within "
                              f"{HELLO_WAIT:.0f} s; is the login shell waiting for input or stuck?"
                              + (f" It said: {said}" if said else ""))
        failures.append(await launch_failure(pipe, interpreter, description))
        pipe.channel.close()
    prefix = f"{description}: "
    earlier = [f"{tried!r}: {f.removeprefix(prefix)}" for tried, f in zip(candidates, failures[:-1])]
    raise RunnerError(failures[-1] + (f" (tried before: {'; '.join(earlier)})" if earlier else ""))


async def launch_failure(pipe: LauncherChannel, python: str, description: str) -> str:
    """Why the remote launcher never said hello, from its exit status and stderr."""
    with trio.move_on_after(EXIT_WAIT):
        await pipe.closed.wait()
    stderr = pipe.stderr_text()
    said = f" It said: {stderr}" if stderr else ""
    status = pipe.exit_status
    if status == TOO_OLD_STATUS:
        return (f"{description}: {python!r} on that host is older than Python 3.6, which the "
                f"parallux launcher needs; point the runner's python= option at a newer interpreter.")
    if status == 127 or "not found" in stderr or "No such file" in stderr:
        return (f"{description}: cannot start the launcher: no Python interpreter {python!r} on "
                f"that host (exit status {status}). Install Python >= 3.6 there, or set the runner's "
                f"python= option to its path.{said}")
    ended = (f"was killed by signal {pipe.exit_signal}" if pipe.exit_signal
             else f"exited with status {status}" if status is not None else "stopped")
    return f"{description}: the launcher {ended} before it started (python={python!r}).{said}"
