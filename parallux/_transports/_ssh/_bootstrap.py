"""Starting the launcher on the remote host: one command, whatever the login shell, nothing installed.

The launcher (``_launcher.py``) travels zlib-compressed and base64-encoded as the payload argument of
``<python> -E -S -c "<boot>" <payload>``, and the boot program holds no character any login shell would
touch.
"""

from __future__ import annotations

import base64
import functools
import shlex
import zlib
from typing import Any, Awaitable, Callable

import trio

from ... import _prespawn
from ..._errors import RunnerError
from ._channel import EXIT_WAIT, HELLO_WAIT, LauncherChannel, LauncherOutput
from ._connect import reason
from ._patches import asyncssh

DEFAULT_PYTHONS = ("/usr/bin/python3", "python3")  # the launcher's interpreter without a python= option
TOO_OLD_STATUS = 86           # the boot command's exit status for a Python older than 3.6

# The boot command's program: no $, backtick, backslash, quote or ! -- it must pass through any login shell
# (bash, dash, zsh, csh, fish) unchanged inside double quotes. The launcher itself is its first argument.
BOOT = ("import base64,sys,zlib;sys.version_info<(3,6) and sys.exit(%d);"
        "exec(zlib.decompress(base64.b64decode(sys.argv[1])))" % TOO_OLD_STATUS)


def boot_command(python: str = "python3") -> str:
    """The one remote command that starts the launcher, whatever the remote user's login shell is."""
    return f'{_shell_word(python)} -E -S -c "{BOOT}" {_launcher_payload()}'


@functools.lru_cache(maxsize=1)
def _launcher_payload() -> str:
    with open(_prespawn.LAUNCHER_PATH, "rb") as f:
        return base64.b64encode(zlib.compress(f.read(), 9)).decode("ascii")


def _shell_word(word: str) -> str:
    safe = all(c.isalnum() or c in "/._-+:,@%~" for c in word)  # a leading ~ expands in every shell
    return word if safe else shlex.quote(word)


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
