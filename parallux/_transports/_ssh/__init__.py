"""SSH runners: the launcher on a remote host, driven over one SSH channel of one connection.

``goal.ssh(...)`` connects at once (a failure is a config-time :class:`RunnerError` naming host, port, user
and the reason), then runs one remote command that starts the launcher (``_bootstrap``). The channel's
stdin/stdout become the launcher's (``_channel``), and the engine speaks the same protocol through it as with
a local runner: commands and files are requests to that launcher, not SSH sessions -- no login shell per
command, no ``MaxSessions`` ceiling, no SFTP subsystem. When the connection drops, the runner connects again
and attaches a new channel to the same launcher, which ran its commands on meanwhile (``_reconnect``,
``_attach``), for up to ``reconnect=`` seconds; the launcher waits as long, then stops every command it
started -- as it does at once without ``reconnect=`` -- so nothing outlives parallux by more than that.

asyncssh is an asyncio library and the engine is Trio; trio-asyncio bridges them. Each SSH runner opens its
own trio-asyncio loop inside its ``open()`` (in the engine's services nursery): the loop lives exactly as
long as the connection, every asyncssh object of a runner belongs to one loop, and a runner that fails or
drops tears down only its own loop.

This package is the only code that imports asyncio, asyncssh or trio_asyncio (``_patches``), and only
``goal.ssh`` imports it, so a local-only run never loads them.
"""

from __future__ import annotations

import secrets
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping

import trio

from ..._errors import RunnerError, leaf_errors
from ..._protocol import WATCHDOG
from .._base import Pipe, Reattachment, Transport, ended_how
from . import _attach, _bootstrap
from ._channel import LauncherChannel, LauncherInput, LauncherOutput
from ._connect import connect_failure, defaults, reason, ssh_settings, text
from ._connect import port as port_number
from ._patches import asyncssh, trio_asyncio
from ._proxy import ProxyCommand
from ._reconnect import reconnect

CLOSE_WAIT = 5.0
ABORT_AFTER = 10.0            # seconds after quit before a silent connection is aborted
PROXY_EXIT_WAIT = 2.0         # seconds a ProxyCommand gets to end on its own once the connection closed
DEFAULT_RECONNECT = 300.0     # seconds a dropped connection is tried again for (reconnect=)


class SshTransport(Transport):
    """One SSH connection, one remote launcher."""

    kind = "ssh"

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        """``options``: the runner's given SSH options (``_runner_options.SSH``), checked here."""
        where = f"goal.ssh({name!r})"
        given = dict(options)
        host, user = given.pop("host", None), given.pop("user", None)
        self.host = text(host if host is not None else name, f"{where}: host")
        self.user = text(user, f"{where}: user") if user is not None else None
        self.port = port_number(given.pop("port", None), f"{where}: port")
        self._name = name
        self._settings = ssh_settings(given, where)
        self.python: str | None = self._settings.pop("python")  # None: DEFAULT_PYTHONS, in order
        self._watchdog = self._settings.pop("watchdog", WATCHDOG)
        self._reconnect = self._settings.pop("reconnect", DEFAULT_RECONNECT)
        # The secret a new channel shows the launcher to be attached to it: it travels inside the channel only.
        self._hello = {"reconnect": self._reconnect, "token": secrets.token_hex(16)} if self._reconnect else {}
        self._reattachment = Reattachment(self._reconnect, self._dropped, self._reattach)
        self._address: tuple[str | None, str, int | None] = (self.user, self.host, self.port)
        # the host as the config names it: an alias of the user's ssh config works in their shell too
        self.login = ("ssh", *(("-p", str(self.port)) if self.port else ()),
                      f"{self.user}@{self.host}" if self.user else self.host)
        self._aio_loop: Any = None
        self._conn: Any = None
        self._abort_timer: Any = None
        self._proxy: ProxyCommand | None = None
        self._hello_seen = False
        self._pipe: LauncherChannel | None = None
        self._python = self.python or "python3"  # the interpreter that started the launcher (and will the bridge)

    def describe(self, name: str) -> str:
        user, host, port = self._address
        where = f"{user + '@' if user else ''}{host}{':' + str(port) if port else ''}"
        alias = f", Host {self.host!r} in the ssh config" if host != self.host else ""
        return f"ssh runner {name!r} ({where}{alias})"

    def plan_facts(self, root: str | None = None) -> dict[str, Any]:
        """A dry run opens no connection: the remote core count is unknown, paths stay relative to ``~``."""
        return {"logical_cores": None, "home": "~", "cwd": "", "numactl": "numactl", "hostname": self.host}

    @asynccontextmanager
    async def open(self, name: str) -> AsyncIterator[Pipe]:
        """Connect, start the launcher over one channel, and yield that channel as two Trio streams."""
        description = self.describe(name)
        async with trio_asyncio.open_loop() as loop:
            self._aio_loop = loop
            self._conn = await self._connect(description)  # (which learns the real address from the ssh config)
            try:
                pipe, output, python = await _bootstrap.start_launcher(self._conn, self._aio, self.python,
                                                                       self.describe(name))
                self._pipe, self._python = pipe, python
                try:
                    yield Pipe(LauncherInput(pipe), output, self._watchdog, self._hello, death=self._death,
                               said_hello=self._ready, reattachment=self._reattachment)
                except BaseException as exc:
                    if not self._hello_seen and any(isinstance(e, RunnerError) for e in leaf_errors(exc)):
                        raise RunnerError(await _bootstrap.launch_failure(pipe, python, self.describe(name))) \
                            from None
                    raise
            finally:
                with trio.CancelScope(shield=True):
                    await self._disconnect()

    def _ready(self) -> None:
        self._hello_seen = True

    def _death(self) -> str | None:
        """From the channel's exit status or signal: its command is the launcher's guardian. A connection
        lost is no death of the launcher (it keeps running until it reads EOF): None."""
        pipe = self._pipe
        if pipe is None or pipe.lost is not None:
            return None
        how = ended_how(pipe.exit_status, pipe.exit_signal)
        said = pipe.stderr_text()
        return f"{how}: {said}" if how and said else how

    def _dropped(self) -> bool:
        """The channel ended without its command's exit (the guardian's, which always outlives the launcher):
        the connection went, not the launcher."""
        pipe = self._pipe
        return pipe is not None and (pipe.lost is not None or pipe.exit_status is None and pipe.exit_signal is None)

    async def _reattach(self, name: str, point: dict[str, Any], seq: int,
                        until: float) -> tuple[tuple[LauncherInput, LauncherOutput], dict[str, Any]]:
        """Connect again, with backoff, and attach a new channel to the launcher waiting at ``point``."""
        request = {"path": point["path"], "pid": point["pid"], "token": self._hello["token"], "seq": seq}

        async def attempt() -> tuple[LauncherChannel, LauncherOutput, dict[str, Any]]:
            await self._drop()
            self._conn = await self._connect(self.describe(name))
            return await _attach.attach(self._conn, self._aio, self._python, self.describe(name), request)

        pipe, output, answer = await reconnect(attempt, self.describe(name), self._reconnect, until)
        self._pipe = pipe
        return (LauncherInput(pipe), output), answer

    async def _drop(self) -> None:
        """Let go of a connection that dropped (or an attempt that failed), and of its ProxyCommand."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            await proxy.stop(0)

    async def close(self) -> None:
        """The launcher was asked to quit; if the connection went silent, abort it rather than wait forever."""
        if self._conn is not None and self._aio_loop is not None:
            self._abort_timer = self._aio_loop.call_later(ABORT_AFTER, self._conn.abort)

    async def _connect(self, description: str) -> Any:
        kwargs = dict(self._settings, host=self.host)
        if self.port is not None:
            kwargs["port"] = self.port
        if self.user is not None:
            kwargs["username"] = self.user
        options = await self._options(kwargs, description)
        kwargs.update(defaults(options, self._settings))
        if options.proxy_command and not options.tunnel:  # (asyncssh, like ssh, prefers a ProxyJump)
            self._proxy = ProxyCommand(options.proxy_command, self.describe(self._name))
            kwargs.update(sock=self._proxy.socket, proxy_command=None)
        try:
            return await self._aio(asyncssh.connect)(**kwargs)
        except (OSError, asyncssh.Error) as exc:
            why = connect_failure(exc, options)
            if self._proxy is not None:
                lost = isinstance(exc, (asyncssh.ConnectionLost, BrokenPipeError, ConnectionResetError))
                with trio.CancelScope(shield=True):
                    why = await self._proxy.failure(why, lost)
            raise RunnerError(f"{self.describe(self._name)}: cannot connect: {why}") from None
        except BaseException:  # cancelled (Ctrl-C while connecting): the proxy goes too
            if self._proxy is not None:
                with trio.CancelScope(shield=True):
                    await self._proxy.stop(0)
            raise

    async def _options(self, kwargs: dict[str, Any], description: str) -> Any:
        """asyncssh's options with the ssh config applied: they name the real host, port and user.

        ``connect`` builds its own from the same arguments; these only tell what it will use."""
        try:
            options = await self._aio(asyncssh.SSHClientConnectionOptions.construct)(**kwargs)
        except (OSError, ValueError, asyncssh.Error) as exc:
            raise RunnerError(f"{description}: cannot load the SSH settings: {reason(exc)}") from None
        self._address = (options.username, options.host, options.port)
        return options

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        if conn is None:
            return
        conn.close()
        with trio.move_on_after(CLOSE_WAIT):
            await self._aio(conn.wait_closed)()
        if self._proxy is not None:
            await self._proxy.stop(PROXY_EXIT_WAIT)

    # -- the connection lent to others (a Slurm runner's login=: its commands are sessions of this connection)

    @property
    def connection(self) -> Any:
        """The open SSH connection, or None while there is none."""
        return self._conn

    def aio(self, fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        """``fn`` (of the connection's asyncio loop) as an awaitable of the engine's Trio loop."""
        return self._aio(fn)

    def _aio(self, fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        """An asyncio-flavoured callable, made awaitable from any Trio task of the engine."""
        return trio_asyncio.aio_as_trio(fn, loop=self._aio_loop)
