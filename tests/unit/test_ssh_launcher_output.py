"""What an SSH runner says of its launcher's output, as plain code: a launcher that went silent is told from one
that ended.
"""

from __future__ import annotations

# imported at collection, outside the unit test's guard: asyncssh's first import asks ldconfig (a process)
# where its libraries are -- as test_ssh.py's imports did for this test before it had a file of its own
from parallux._transports._ssh import _channel  # noqa: F401


async def test_launcher_output_tells_a_silent_launcher_from_one_that_ended(autojump_clock: object) -> None:
    # A launcher that never answers (a login shell waiting for input) must not be taken for a missing
    # interpreter: the runner then reports the hang instead of trying the next interpreter for as long again.
    import trio

    from parallux._transports._ssh._channel import HELLO_WAIT
    from parallux._transports._ssh._channel import LauncherChannel as _LauncherChannel
    from parallux._transports._ssh._channel import LauncherOutput as _LauncherOutput

    class Channel:
        def write(self, data: bytes) -> None:
            pass

    silent = _LauncherChannel()
    silent.channel = Channel()
    started = trio.current_time()
    assert await _LauncherOutput(silent, "test").hear_hello() == "silent"
    assert trio.current_time() - started >= HELLO_WAIT

    ended = _LauncherChannel()
    ended.channel = Channel()
    ended.eof_received()
    ended.connection_lost(None)
    assert await _LauncherOutput(ended, "test").hear_hello() == "ended"

    answering = _LauncherChannel()
    answering.channel = Channel()
    answering.data_received(b'login chatter\n{"ev":"hello","pid":1}\n', None)
    output = _LauncherOutput(answering, "test")
    assert await output.hear_hello() == "hello"
