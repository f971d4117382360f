"""Attaching a new SSH channel to a launcher that outlived its connection: the bridge, and its answer.

The launcher of a dropped connection waits, detached, at a Unix socket it named in its hello (see
"reattaching" in ``_launcher.py``). A new channel runs the launcher's own file as the *bridge*
(``--attach``): parallux writes it one line -- where the launcher waits, its pid, the runner's secret token
and the last of its events parallux processed -- and the bridge hands the channel itself (its stdin, stdout
and stderr) to the launcher, which answers on it, ``attached`` or ``refused``, and speaks the protocol over
it from then on. The token travels inside the SSH channel only, never on a command line.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from ..._errors import RunnerError
from ..._launcher import ATTACH_ARG
from .._boot import boot_command
from ._channel import LauncherChannel, LauncherOutput
from ._connect import reason
from ._patches import asyncssh

ANSWERS = (b'{"ev":"attached"', b'{"ev":"refused"')  # the first event of an attach, past any login chatter
ANSWER_WAIT = 60.0  # seconds for the bridge's start (a login shell, Python) and the launcher's answer


class Refused(Exception):
    """The launcher cannot be attached, and never will be: it is gone, or what waits there is not it."""


async def attach(conn: Any, aio: Callable[..., Callable[..., Awaitable[Any]]], python: str, description: str,
                 request: dict[str, Any]) -> tuple[LauncherChannel, LauncherOutput, dict[str, Any]]:
    """Run the bridge over a new channel of ``conn`` and attach it to the launcher ``request`` names; the
    channel, its output (past the answer) and the answer. RunnerError if the bridge did not answer (worth
    another try), Refused if the launcher cannot be attached."""
    try:
        _, pipe = await aio(conn.create_session)(LauncherChannel, boot_command(python, ATTACH_ARG),
                                                 encoding=None, request_pty=False)
    except (OSError, asyncssh.Error) as exc:
        raise RunnerError(f"{description}: cannot open a session to attach: {reason(exc)}") from None
    output = LauncherOutput(pipe, description, ANSWERS)
    try:
        pipe.channel.write((json.dumps(dict(request, op="attach")) + "\n").encode())
    except OSError as exc:
        raise RunnerError(f"{description}: cannot attach: {reason(exc)}") from None
    line = await output.first_line(ANSWER_WAIT)
    if isinstance(line, str):
        pipe.channel.close()
        said = pipe.stderr_text()
        raise RunnerError(f"{description}: the attach {'did not answer' if line == 'silent' else 'ended'}"
                          + (f": {said}" if said else ""))
    answer = json.loads(line)
    if answer.get("ev") != "attached":
        pipe.channel.close()
        raise Refused(answer.get("message") or "refused")
    return pipe, output, answer
