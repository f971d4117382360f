"""SSH runners: the launcher on a remote host, driven over one SSH channel of one connection.

``goal.ssh(...)`` connects at once (a failure is a config-time :class:`RunnerError` naming host, port, user
and the reason), then runs one remote command, ``<python> -E -S -c "<boot>" <payload>``: the launcher
(``_launcher.py``) travels zlib-compressed and base64-encoded as the payload argument, and the boot program
that unpacks it holds no character any login shell would touch, so nothing has to be installed on the remote
host and its user's shell does not matter. The channel's stdin/stdout become the launcher's, and the engine
speaks the same JSON-lines protocol through it as with a local runner. Commands are requests to that
launcher, not SSH sessions: no login shell per command, no ``MaxSessions`` ceiling, and when the connection
drops -- or parallux dies -- the remote launcher reads EOF and stops every command it started. Files
(``read_file``, ``put``, ``get``) are launcher requests too (``_transfer.py``): no SFTP subsystem needed.

asyncssh is an asyncio library and the engine is Trio; trio-asyncio bridges them. Each SSH runner opens its
own trio-asyncio loop inside its ``serve`` task (in the engine's services nursery): the loop lives exactly as
long as the connection, every asyncssh object of a runner belongs to one loop, and a runner that fails or
drops tears down only its own loop. A loop is a few Trio tasks, so one per runner costs nothing that matters.
The loop's callbacks run inside Trio, in the engine thread, so the channel callbacks below feed Trio
memory channels and events directly -- no thread hop and no per-line round trip in either direction.

This is the only module that imports asyncio, asyncssh or trio_asyncio, and only ``goal.ssh`` imports it, so a
local-only run never loads them. Importing trio_asyncio replaces asyncio's loop policy for the whole process;
:func:`_keep_plain_asyncio_in_main_thread` gives the main thread its ordinary policy back, so a config that
calls ``asyncio.run()`` itself still gets a plain asyncio loop.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes.util
import functools
import math
import os
import posixpath
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import zlib
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Iterator, Mapping


LOADER_CACHE = "/etc/ld.so.cache"
# where ``ld -l`` looks besides LD_LIBRARY_PATH (plus the multiarch subdirectories, on Debian)
LINKER_DIRS = ("/usr/local/lib", "/lib", "/usr/lib", "/usr/local/lib64", "/lib64", "/usr/lib64")


def _surely_absent(name: str) -> bool:
    """No library ``lib<name>`` that ctypes.util.find_library could find: not in the loader's cache (whose
    bytes hold every cached soname) and no ``lib<name>.so`` where ``ld -l<name>`` would look. A stat per
    directory and one read, instead of the ``ldconfig -p`` and ``ld -t`` runs find_library makes."""
    try:
        with open(LOADER_CACHE, "rb") as f:
            if f"lib{name}.".encode() in f.read():
                return False
    except OSError:
        return False  # no cache to read: ask the slow way
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    multiarch = getattr(sys.implementation, "_multiarch", None)
    for base in LINKER_DIRS:
        dirs.append(base)
        if multiarch:
            dirs.append(f"{base}/{multiarch}")
    return not any(os.path.exists(os.path.join(d, f"lib{name}.so")) for d in dirs)


@contextmanager
def _library_lookup_without_compiler() -> Iterator[None]:
    """While asyncssh is imported, look shared libraries up without running a compiler or a linker.

    Importing asyncssh probes for nettle and (twice) for liboqs with ``ctypes.util.find_library``, which runs
    ``ldconfig -p`` and, for a library the loader's cache does not know -- liboqs usually is not installed --
    ``ld -t`` or gcc: ~20 ms of a start-up that matters for SSH runners. A library that is surely absent is
    answered at once (:func:`_surely_absent`); any other is looked up as before, in the loader's cache and
    then with ``ld -t`` but never gcc. ``ctypes.CDLL`` of the found name searches the same places, so the
    answer only differs for a library the loader could not open by that name anyway."""
    util: Any = ctypes.util
    in_cache = getattr(util, "_findSoname_ldconfig", None)
    by_ld = getattr(util, "_findLib_ld", None)
    soname = getattr(util, "_get_soname", None)
    if in_cache is None or by_ld is None or soname is None:  # another platform or Python: leave it alone
        yield
        return
    original = util.find_library
    util.find_library = lambda name: None if _surely_absent(name) else in_cache(name) or soname(by_ld(name))
    try:
        yield
    finally:
        util.find_library = original


with _library_lookup_without_compiler():
    import asyncssh
import trio
import trio_asyncio

from ._errors import ConfigError, RunnerError, leaf_errors
from ._launcher import RECORD_NAME
from ._options import SSH_OPTIONS, check_option_names
from ._protocol import LauncherClient
from ._runner import KILL_WAIT, LAUNCHER_PATH, Runner, wait_for_exit

if TYPE_CHECKING:
    from ._goal import Goal


DEFAULT_CONNECT_TIMEOUT = 15.0
DEFAULT_KEEPALIVE = 15.0      # seconds between keepalive probes on an idle connection
DEFAULT_KEEPALIVE_COUNT = 3   # unanswered probes before the connection counts as dropped
DEFAULT_PYTHONS = ("/usr/bin/python3", "python3")  # the launcher's interpreter without a python= option
HELLO_WAIT = 60.0             # seconds for a starting launcher to answer its first hello
TOO_OLD_STATUS = 86           # the boot command's exit status for a Python older than 3.6
STDERR_KEPT = 8192            # bytes of the remote launcher's stderr kept for error messages
PRELUDE_LIMIT = 1 << 20       # login-shell chatter tolerated on stdout before the launcher's hello
HELLO_PREFIX = b'{"ev":"hello"'
EXIT_WAIT = 2.0               # how long to wait for the exit status of a launcher that stopped early
CLOSE_WAIT = 5.0
PROXY_EXIT_WAIT = 2.0         # seconds a ProxyCommand gets to end on its own once the connection closed
PROXY_LOST_WAIT = 0.5         # seconds to wait for a ProxyCommand's status after the connection ended
RECORDS_PER_REQUEST = 256     # completion records asked of the remote launcher at once (--resume)

# The boot command's program: no $, backtick, backslash, quote or ! -- it must pass through any login shell
# (bash, dash, zsh, csh, fish) unchanged inside double quotes. The launcher itself is its first argument.
BOOT = ("import base64,sys,zlib;sys.version_info<(3,6) and sys.exit(%d);"
        "exec(zlib.decompress(base64.b64decode(sys.argv[1])))" % TOO_OLD_STATUS)


def boot_command(python: str = "python3") -> str:
    """The one remote command that starts the launcher, whatever the remote user's login shell is."""
    return f'{_shell_word(python)} -E -S -c "{BOOT}" {_launcher_payload()}'


@functools.lru_cache(maxsize=1)
def _launcher_payload() -> str:
    with open(LAUNCHER_PATH, "rb") as f:
        return base64.b64encode(zlib.compress(f.read(), 9)).decode("ascii")


def _shell_word(word: str) -> str:
    safe = all(c.isalnum() or c in "/._-+:,@%~" for c in word)  # a leading ~ expands in every shell
    return word if safe else shlex.quote(word)


class SshRunner(Runner):
    """A runner on another machine: one SSH connection, one remote launcher."""

    kind = "ssh"

    def __init__(self, goal: Goal, name: str, *, host: str | None, user: str | None, port: int | None,
                 ssh_options: Mapping[str, Any], **runner_options: Any) -> None:
        super().__init__(goal, name, **runner_options)
        where = f"goal.ssh({name!r})"
        self.host = _text(host if host is not None else name, f"{where}: host")
        self.user = _text(user, f"{where}: user") if user is not None else None
        self.port = _port(port, f"{where}: port")
        self._settings = _ssh_settings(ssh_options, where)
        self.python: str | None = self._settings.pop("python")  # None: DEFAULT_PYTHONS, in order
        self.watchdog = self._settings.pop("watchdog", self.watchdog)
        self._address: tuple[str | None, str, int | None] = (self.user, self.host, self.port)
        self._aio_loop: Any = None
        self._conn: Any = None
        self._abort_timer: Any = None
        self._proxy: _ProxyCommand | None = None

    def describe(self) -> str:
        user, host, port = self._address
        where = f"{user + '@' if user else ''}{host}{':' + str(port) if port else ''}"
        alias = f", Host {self.host!r} in the ssh config" if host != self.host else ""
        return f"ssh runner {self.name!r} ({where}{alias})"

    def _plan_facts(self) -> dict[str, Any]:
        """``--dry-run`` opens no connection: the remote core count is unknown, paths stay relative to ``~``."""
        return {"logical_cores": None, "home": "~", "cwd": "", "numactl": "numactl"}

    # -- completion records (main thread) ---------------------------------------------------------------

    def _records_in(self, work_dirs: list[str]) -> list[dict[str, Any] | None]:
        """Read by the remote launcher, RECORDS_PER_REQUEST to a request and the requests all in flight at
        once: a resume of thousands of commands costs a few round trips, not a file read for each."""
        if self.client is None:  # a dry run connects nothing, so it knows of no earlier run here
            return [None] * len(work_dirs)
        paths = [posixpath.join(work_dir, RECORD_NAME) for work_dir in work_dirs]
        return self._in_engine_thread(self._fetch_records, self.client, paths)

    async def _fetch_records(self, client: LauncherClient, paths: list[str]) -> list[dict[str, Any] | None]:
        chunks = [paths[i:i + RECORDS_PER_REQUEST] for i in range(0, len(paths), RECORDS_PER_REQUEST)]
        answers: list[list[dict[str, Any] | None]] = [[] for _ in chunks]

        async def ask(index: int) -> None:
            answers[index] = await client.read_records(chunks[index])

        async with trio.open_nursery() as nursery:
            for index in range(len(chunks)):
                nursery.start_soon(ask, index)
        return [record for answer in answers for record in answer]

    # -- lifetime (engine thread) --------------------------------------------------------------------------

    @asynccontextmanager
    async def _open_launcher(self) -> AsyncIterator[tuple[trio.abc.SendStream, trio.abc.ReceiveStream]]:
        """Connect, start the launcher over one channel, and yield that channel as two Trio streams."""
        async with trio_asyncio.open_loop() as loop:
            self._aio_loop = loop
            self._conn = await self._connect()
            try:
                pipe, output, python = await self._start_launcher(self._conn)
                try:
                    yield _LauncherInput(pipe), output
                except BaseException as exc:
                    if not self.facts and any(isinstance(e, RunnerError) for e in leaf_errors(exc)):
                        raise RunnerError(await self._launch_failure(pipe, python)) from None
                    raise
            finally:
                with trio.CancelScope(shield=True):
                    await self._disconnect()

    async def _close(self) -> None:
        """Ask the launcher to quit; if the connection went silent, abort it rather than wait forever."""
        await super()._close()
        if self._conn is not None and self._aio_loop is not None:
            self._abort_timer = self._aio_loop.call_later(KILL_WAIT, self._conn.abort)

    async def _connect(self) -> Any:
        kwargs = dict(self._settings, host=self.host)
        if self.port is not None:
            kwargs["port"] = self.port
        if self.user is not None:
            kwargs["username"] = self.user
        options = await self._options(kwargs)
        kwargs.update(self._defaults(options))
        if options.proxy_command and not options.tunnel:  # (asyncssh, like ssh, prefers a ProxyJump)
            self._proxy = _ProxyCommand(options.proxy_command, self.describe())
            kwargs.update(sock=self._proxy.socket, proxy_command=None)
        try:
            return await self._aio(asyncssh.connect)(**kwargs)
        except (OSError, asyncssh.Error) as exc:
            why = _connect_failure(exc, options)
            if self._proxy is not None:
                lost = isinstance(exc, (asyncssh.ConnectionLost, BrokenPipeError, ConnectionResetError))
                with trio.CancelScope(shield=True):
                    why = await self._proxy.failure(why, lost)
            raise RunnerError(f"{self.describe()}: cannot connect: {why}") from None
        except BaseException:  # cancelled (Ctrl-C while connecting): the proxy goes too
            if self._proxy is not None:
                with trio.CancelScope(shield=True):
                    await self._proxy.stop(0)
            raise

    async def _options(self, kwargs: dict[str, Any]) -> Any:
        """asyncssh's options with the ssh config applied: they name the real host, port and user.

        ``connect`` builds its own from the same arguments; these only tell what it will use."""
        try:
            options = await self._aio(asyncssh.SSHClientConnectionOptions.construct)(**kwargs)
        except (OSError, ValueError, asyncssh.Error) as exc:
            raise RunnerError(f"{self.describe()}: cannot load the SSH settings: {_reason(exc)}") from None
        self._address = (options.username, options.host, options.port)
        return options

    def _defaults(self, options: Any) -> dict[str, Any]:
        """parallux's defaults for what neither the runner's options nor the ssh config set."""
        config = options.config
        defaults: dict[str, Any] = {}
        if options.connect_timeout is None:
            defaults["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT
        if "keepalive_interval" not in self._settings and config.get("ServerAliveInterval") is None:
            defaults["keepalive_interval"] = DEFAULT_KEEPALIVE
        if "keepalive_count_max" not in self._settings and config.get("ServerAliveCountMax") is None:
            defaults["keepalive_count_max"] = DEFAULT_KEEPALIVE_COUNT
        if config.get("Ciphers") is None and _cpu_has_aes():
            defaults["encryption_algs"] = _gcm_first(asyncssh.encryption.get_default_encryption_algs())
        return defaults

    async def _start_launcher(self, conn: Any) -> tuple[_LauncherChannel, _LauncherOutput, str]:
        """Start the launcher with the first interpreter that runs it, and hear its hello.

        Without a ``python`` option, ``/usr/bin/python3`` comes first: ``python3`` on a login PATH is often a
        version manager's shim (pyenv's costs ~0.1 s per start), while the launcher needs only some Python
        >= 3.6 with its standard library. If that fails to start the launcher, ``python3`` is tried."""
        candidates = [self.python] if self.python is not None else list(DEFAULT_PYTHONS)
        failures: list[str] = []
        for python in candidates:
            try:
                _, pipe = await self._aio(conn.create_session)(
                    _LauncherChannel, boot_command(python), encoding=None, request_pty=False)
            except (OSError, asyncssh.Error) as exc:
                raise RunnerError(f"{self.describe()}: cannot open a session for the launcher: {_reason(exc)}") \
                    from None
            output = _LauncherOutput(pipe, self.describe())
            heard = await output.hear_hello()
            if heard == "hello":
                return pipe, output, python
            if heard == "silent":  # a hang, not a missing interpreter: another one would hang as well
                pipe.channel.close()
                said = pipe.stderr_text()
                raise RunnerError(f"{self.describe()}: the launcher ({python!r}) did not answer within "
                                  f"{HELLO_WAIT:.0f} s; is the login shell waiting for input or stuck?"
                                  + (f" It said: {said}" if said else ""))
            failures.append(await self._launch_failure(pipe, python))
            pipe.channel.close()
        prefix = f"{self.describe()}: "
        earlier = [f"{python!r}: {f.removeprefix(prefix)}" for python, f in zip(candidates, failures[:-1])]
        raise RunnerError(failures[-1] + (f" (tried before: {'; '.join(earlier)})" if earlier else ""))

    async def _launch_failure(self, pipe: _LauncherChannel, python: str) -> str:
        """Why the remote launcher never said hello, from its exit status and stderr."""
        with trio.move_on_after(EXIT_WAIT):
            await pipe.closed.wait()
        stderr = pipe.stderr_text()
        said = f" It said: {stderr}" if stderr else ""
        status = pipe.exit_status
        if status == TOO_OLD_STATUS:
            return (f"{self.describe()}: {python!r} on that host is older than Python 3.6, which the "
                    f"parallux launcher needs; point the runner's python= option at a newer interpreter.")
        if status == 127 or "not found" in stderr or "No such file" in stderr:
            return (f"{self.describe()}: cannot start the launcher: no Python interpreter {python!r} on "
                    f"that host (exit status {status}). Install Python >= 3.6 there, or set the runner's "
                    f"python= option to its path.{said}")
        ended = (f"was killed by signal {pipe.exit_signal}" if pipe.exit_signal
                 else f"exited with status {status}" if status is not None else "stopped")
        return f"{self.describe()}: the launcher {ended} before it started (python={python!r}).{said}"

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

    def _aio(self, fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        """An asyncio-flavoured callable, made awaitable from any Trio task of the engine."""
        return trio_asyncio.aio_as_trio(fn, loop=self._aio_loop)


class _ProxyCommand:
    """The ssh config's ProxyCommand (e.g. ``ssh -W %h:%p bastion``), run by parallux itself with one end of a
    socketpair as its stdin and stdout; asyncssh gets the other end as an already-connected socket.

    asyncssh could run it, but through trio-asyncio's child watcher, whose thread reports the command's exit
    to a Trio run that may have ended by then (a traceback at the end of every run). Run here, parallux
    owns its lifetime: it ends when the connection closes its socket, or is killed (its own session, so
    its whole group) if it lingers, and a failure says what the command printed and how it ended."""

    def __init__(self, argv: list[str], description: str) -> None:
        self.command = shlex.join(argv)
        ours, theirs = socket.socketpair()
        self.stderr = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(argv, stdin=theirs, stdout=theirs, stderr=self.stderr,
                                            start_new_session=True)
        except OSError as exc:
            ours.close()
            self.stderr.close()
            raise RunnerError(f"{description}: cannot connect: cannot start the ssh config's ProxyCommand "
                              f"`{self.command}`: {_reason(exc)}") from None
        finally:
            theirs.close()
        self.socket = ours

    async def stop(self, wait: float) -> str:
        """Give the command ``wait`` seconds to end (the connection's end closes its input), then kill it;
        the end of what it printed."""
        self.socket.close()  # (the transport's close already did, unless connecting failed or was cancelled)
        if not await wait_for_exit(self.process, wait):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                pass
            self.process.wait()  # killed: at once
        with self.stderr:
            self.stderr.seek(0)
            return self.stderr.read()[-STDERR_KEPT:].decode("utf-8", "replace").strip()

    async def failure(self, why: str, lost: bool) -> str:
        """Why connecting failed: the ProxyCommand's failure if it had already failed, else ``why``; with the
        end of what it printed either way. ``lost``: the connection just ended, which a proxy's exit does a
        moment before its status can be read."""
        if lost:
            await wait_for_exit(self.process, PROXY_LOST_WAIT)
        status = self.process.poll()
        said = await self.stop(EXIT_WAIT)
        if status:  # it ended, and not well: the connection only saw its end
            ended = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
            return f"the ssh config's ProxyCommand `{self.command}` {ended}" + (f": {said}" if said else "")
        return why + (f"; the ssh config's ProxyCommand `{self.command}` said: {said}" if said else "")


def _gcm_first(algorithms: list[bytes]) -> list[str]:
    """asyncssh's ciphers with AES-GCM first. Every request and event is a small packet, and on a CPU with AES
    instructions one AES-GCM call per packet costs less than chacha20-poly1305's three (~20 % of a round trip
    through sshd here). Both are authenticated ciphers that OpenSSH enables by default."""
    names = [name.decode("ascii") for name in algorithms]
    return sorted(names, key=lambda name: not (name.startswith("aes") and "-gcm" in name))


@functools.lru_cache(maxsize=1)
def _cpu_has_aes() -> bool:
    """Whether this CPU advertises AES instructions (x86 ``flags``, ARM ``Features`` in /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return "aes" in line.split(":", 1)[-1].split()
    except OSError:
        pass
    return False


# -- the launcher's channel as Trio streams ---------------------------------------------------------------

class _LauncherChannel(asyncssh.SSHClientSession):  # type: ignore[misc]
    """asyncssh's callbacks for the launcher's channel. They run in the trio-asyncio loop, i.e. inside Trio
    in the engine thread, so they may feed Trio objects directly."""

    def __init__(self) -> None:
        self._stdout_in, self.stdout = trio.open_memory_channel[bytes](math.inf)
        self.channel: Any = None
        self.stderr = bytearray()
        self.exit_status: int | None = None
        self.exit_signal: str | None = None
        self.lost: Exception | None = None  # why the connection closed under the channel, if it broke
        self.closed = trio.Event()
        self.writable = trio.Event()
        self.writable.set()

    def connection_made(self, chan: Any) -> None:
        self.channel = chan

    def data_received(self, data: bytes, datatype: Any) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            self.stderr += data
            del self.stderr[:-STDERR_KEPT]
        else:
            try:
                self._stdout_in.send_nowait(data)
            except trio.ClosedResourceError:  # data after EOF: nobody reads it any more
                pass

    def eof_received(self) -> bool:
        self._stdout_in.close()
        return False

    def exit_status_received(self, status: int) -> None:
        self.exit_status = status

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self.exit_signal = signal

    def pause_writing(self) -> None:
        self.writable = trio.Event()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc
        self._stdout_in.close()
        self.writable.set()
        self.closed.set()

    def stderr_text(self) -> str:
        return " ".join(self.stderr.decode("utf-8", "replace").split())[-2000:]


class _LauncherInput(trio.abc.SendStream):
    """The launcher's stdin. Writes go straight into asyncssh's buffer; the window's back-pressure is
    honoured through pause_writing/resume_writing, so a batch costs one call, not a round trip."""

    def __init__(self, pipe: _LauncherChannel) -> None:
        self._pipe = pipe

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._pipe.closed.is_set():
            raise trio.BrokenResourceError("the SSH channel is closed")
        try:
            self._pipe.channel.write(bytes(data))
        except OSError as exc:
            raise trio.BrokenResourceError(f"the SSH channel is closed: {exc}") from exc
        await self._pipe.writable.wait()

    def write_now(self, data: bytes) -> int:
        """Write without awaiting (see ``LauncherClient.post``) while the channel's window is open."""
        if self._pipe.closed.is_set() or not self._pipe.writable.is_set():
            raise BlockingIOError("the SSH channel cannot take more now")
        self._pipe.channel.write(data)
        return len(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._pipe.writable.wait()

    async def aclose(self) -> None:
        """EOF on the launcher's stdin: it stops whatever is left and exits."""
        if not self._pipe.closed.is_set():
            try:
                self._pipe.channel.write_eof()
            except OSError:
                pass
        await trio.lowlevel.checkpoint()


class _LauncherOutput(trio.abc.ReceiveStream):
    """The launcher's stdout. Anything a login shell prints before the launcher's hello is skipped; a
    dropped connection or a launcher that died ends the stream with BrokenResourceError saying why."""

    def __init__(self, pipe: _LauncherChannel, description: str) -> None:
        self._pipe = pipe
        self._description = description
        self._pending = b""
        self._taken = 0  # bytes of _pending already returned (file data comes by the MiB: no re-slicing it)
        self._prelude: bytes | None = b""  # None once the hello was seen

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        limit = max_bytes or 1 << 16
        while self._taken >= len(self._pending):
            try:
                chunk = await self._pipe.stdout.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                await self._raise_if_broken()
                return b""
            self._pending, self._taken = self._past_prelude(b"".join([chunk, *self._more()])), 0
        if not self._taken and len(self._pending) <= limit:
            data, self._pending = self._pending, b""
            return data
        data = self._pending[self._taken:self._taken + limit]
        self._taken += len(data)
        return data

    async def hear_hello(self) -> str:
        """Ask the starting launcher for its hello and read it (past any login-shell chatter): "hello", or
        "ended" if the launcher ended first, or "silent" if nothing came within HELLO_WAIT. The client asks
        again when it takes the stream over."""
        try:
            self._pipe.channel.write(b'{"op":"hello"}\n')
        except OSError:
            return "ended"
        line = b""
        with trio.move_on_after(HELLO_WAIT):
            try:
                while b"\n" not in line:
                    chunk = await self.receive_some()
                    if not chunk:
                        return "ended"
                    line += chunk
            except trio.BrokenResourceError:
                return "ended"
        if b"\n" not in line:
            return "silent"
        # anything after the hello is the client's
        self._pending, self._taken = line.split(b"\n", 1)[1] + self._pending[self._taken:], 0
        return "hello"

    def _more(self) -> list[bytes]:
        chunks = []
        while True:
            try:
                chunks.append(self._pipe.stdout.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return chunks

    def _past_prelude(self, data: bytes) -> bytes:
        if self._prelude is None:
            return data
        self._prelude += data
        start = self._prelude.find(HELLO_PREFIX)
        if start < 0:
            if len(self._prelude) > PRELUDE_LIMIT:
                raise trio.BrokenResourceError("the remote login shell printed too much before the launcher")
            return b""
        data, self._prelude = self._prelude[start:], None
        return data

    async def _raise_if_broken(self) -> None:
        pipe = self._pipe
        if pipe.lost is None:
            with trio.move_on_after(EXIT_WAIT):
                await pipe.closed.wait()
        if pipe.lost is not None:
            raise trio.BrokenResourceError(f"{self._description}: {_reason(pipe.lost)}")
        if pipe.exit_signal or pipe.exit_status:
            how = f"was killed by signal {pipe.exit_signal}" if pipe.exit_signal else f"exited with status " \
                f"{pipe.exit_status}"
            said = pipe.stderr_text()
            raise trio.BrokenResourceError(f"the launcher of {self._description} {how}"
                                           + (f": {said}" if said else ""))

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


# -- options and errors -----------------------------------------------------------------------------------

def _ssh_settings(options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The runner's SSH keyword options, checked, as keyword arguments for asyncssh's options."""
    check_option_names(options, SSH_OPTIONS, where)  # goal.ssh() checked them already: for other callers
    python = options.get("python")
    settings: dict[str, Any] = {"python": _text(python, f"{where}: python") if python is not None else None}
    keys = [*_paths(options.get("identity_file"), f"{where}: identity_file", must_exist=True),
            *_paths(options.get("client_keys"), f"{where}: client_keys", must_exist=True)]
    if keys:
        settings["client_keys"] = keys
    if "passphrase" in options:
        settings["passphrase"] = _text(options["passphrase"], f"{where}: passphrase")
    if "agent" in options:
        agent = options["agent"]
        settings["agent_path"] = None if agent in (None, False) else _path(agent, f"{where}: agent")
    if "known_hosts" in options:  # None turns host key checking off; only an explicit None does
        known = options["known_hosts"]
        settings["known_hosts"] = None if known is None else _paths(known, f"{where}: known_hosts", True)
    settings["config"] = _config_paths(options.get("ssh_config", ()), f"{where}: ssh_config")
    settings.update(_timing(options, where))
    return settings


def _config_paths(value: Any, what: str) -> list[str]:
    """The OpenSSH client configs to read: ~/.ssh/config of $HOME by default, none for ``None``."""
    if value is None:
        return []
    if value == ():
        default = os.path.join(os.path.expanduser("~"), ".ssh", "config")
        return [default] if os.access(default, os.R_OK) else []
    return _paths(value, what, must_exist=True)


def _timing(options: Mapping[str, Any], where: str) -> dict[str, Any]:
    timing: dict[str, Any] = {}
    if "connect_timeout" in options:
        timing["connect_timeout"] = _seconds(options["connect_timeout"], f"{where}: connect_timeout")
    if "keepalive" in options:  # None or 0: no keepalive probes
        value = options["keepalive"]
        timing["keepalive_interval"] = 0.0 if value in (None, 0) else _seconds(value, f"{where}: keepalive")
    if "watchdog" in options:
        timing["watchdog"] = _seconds(options["watchdog"], f"{where}: watchdog")
    if "keepalive_count" in options:
        count = options["keepalive_count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"{where}: keepalive_count must be an int >= 1, not {count!r}")
        timing["keepalive_count_max"] = count
    return timing


def _paths(value: Any, what: str, must_exist: bool) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    paths = [_path(item, what) for item in items]
    missing = [p for p in paths if must_exist and not os.path.exists(p)]
    if missing:
        raise ConfigError(f"{what}: no such file: {', '.join(missing)}")
    return paths


def _path(value: Any, what: str) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    return os.path.expanduser(_text(value, what))


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\n" in value or "\0" in value:
        raise ConfigError(f"{what} must be a non-empty one-line str, not {value!r}")
    return value


def _port(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ConfigError(f"{what} must be an int from 1 to 65535, not {value!r}")
    return value


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ConfigError(f"{what} must be a positive number of seconds, not {value!r}")
    return float(value)


def _connect_failure(exc: BaseException, options: Any) -> str:
    """Why a connection failed, in the words of someone who has to fix it."""
    if isinstance(exc, TimeoutError):
        return f"no answer within connect_timeout={options.connect_timeout or DEFAULT_CONNECT_TIMEOUT:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (no SSH server listens on that port)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return (f"the host key is not trusted ({exc.reason}): it is not in known_hosts"
                f"{_known_hosts_names(options)}. Check the key and add it, e.g. with "
                f"`ssh-keyscan -p {options.port} {options.host} >> ~/.ssh/known_hosts`")
    if isinstance(exc, asyncssh.PermissionDenied):
        return (f"authentication failed ({exc.reason}); no key or agent identity offered was accepted. "
                f"Set identity_file=, the ssh config's IdentityFile, or load the key into ssh-agent")
    return _reason(exc)


def _known_hosts_names(options: Any) -> str:
    known = options.known_hosts
    if isinstance(known, (list, tuple)) and known:
        return f" ({', '.join(map(str, known))})"
    return " (~/.ssh/known_hosts)" if not known else ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.DisconnectError):
        return exc.reason or type(exc).__name__
    if isinstance(exc, asyncssh.ChannelOpenError):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _keep_plain_asyncio_in_main_thread() -> None:
    """trio_asyncio, once imported, hands every thread outside Trio its own loop policy. A config runs in
    the main thread and may call ``asyncio.run()``: give that thread back the policy it had."""
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        asyncio.set_event_loop_policy(asyncio.get_event_loop_policy())
    except RuntimeError:  # already a Trio context, or trio_asyncio's own policy: nothing to restore
        pass


_keep_plain_asyncio_in_main_thread()
