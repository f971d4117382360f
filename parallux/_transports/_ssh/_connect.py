"""An SSH runner's options, parallux's defaults for what they leave open, and why a connection failed."""

from __future__ import annotations

import functools
import math
import os
import shlex
import socket
from typing import Any, Mapping

from ..._errors import ConfigError
from ..._options import check_option_names
from ..._runner_options import SSH_OPTIONS
from ._patches import asyncssh

DEFAULT_CONNECT_TIMEOUT = 15.0
DEFAULT_KEEPALIVE = 15.0      # seconds between keepalive probes on an idle connection
DEFAULT_KEEPALIVE_COUNT = 3   # unanswered probes before the connection counts as dropped


def ssh_settings(options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The runner's SSH keyword options, checked, as keyword arguments for asyncssh's options."""
    check_option_names(options, SSH_OPTIONS, where)  # goal.ssh() checked them already: for other callers
    python = options.get("python")
    settings: dict[str, Any] = {"python": text(python, f"{where}: python") if python is not None else None}
    keys = [*_paths(options.get("identity_file"), f"{where}: identity_file", must_exist=True),
            *_paths(options.get("client_keys"), f"{where}: client_keys", must_exist=True)]
    if keys:
        settings["client_keys"] = keys
    if "passphrase" in options:
        settings["passphrase"] = text(options["passphrase"], f"{where}: passphrase")
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
    if "reconnect" in options:  # 0: never (a dropped connection ends the commands at once, as the launcher)
        value = options["reconnect"]
        timing["reconnect"] = 0.0 if value == 0 and not isinstance(value, bool) else \
            _seconds(value, f"{where}: reconnect", "a number of seconds >= 0")
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
    return os.path.expanduser(text(value, what))


def text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\n" in value or "\0" in value:
        raise ConfigError(f"{what} must be a non-empty one-line str, not {value!r}")
    return value


def port(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ConfigError(f"{what} must be an int from 1 to 65535, not {value!r}")
    return value


def _seconds(value: Any, what: str, wanted: str = "a positive number of seconds") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ConfigError(f"{what} must be {wanted}, not {value!r}")
    return float(value)


def connect_failure(exc: BaseException, options: Any) -> str:
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
                f"`ssh-keyscan -p {options.port} {options.host} >> {_known_hosts_file(options)}`")
    if isinstance(exc, asyncssh.PermissionDenied):
        return (f"authentication failed ({exc.reason}); no key or agent identity offered was accepted. "
                f"Set identity_file=, the ssh config's IdentityFile, or load the key into ssh-agent")
    return reason(exc)


def _known_hosts_names(options: Any) -> str:
    known = options.known_hosts
    if isinstance(known, (list, tuple)) and known:
        return f" ({', '.join(map(str, known))})"
    return " (~/.ssh/known_hosts)" if not known else ""


def _known_hosts_file(options: Any) -> str:
    """The file a key is added to: the first the runner's ``known_hosts=`` (or the ssh config) names, where
    the connection looked; ~/.ssh/known_hosts when neither names one."""
    known = options.known_hosts
    if isinstance(known, (list, tuple)) and known and isinstance(known[0], (str, os.PathLike)):
        return shlex.quote(os.fspath(known[0]))
    return "~/.ssh/known_hosts"


def reason(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.DisconnectError):
        return exc.reason or type(exc).__name__
    if isinstance(exc, asyncssh.ChannelOpenError):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def defaults(options: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """parallux's defaults for what neither the runner's options nor the ssh config set."""
    config = options.config
    chosen: dict[str, Any] = {}
    if options.connect_timeout is None:
        chosen["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT
    if "keepalive_interval" not in settings and config.get("ServerAliveInterval") is None:
        chosen["keepalive_interval"] = DEFAULT_KEEPALIVE
    if "keepalive_count_max" not in settings and config.get("ServerAliveCountMax") is None:
        chosen["keepalive_count_max"] = DEFAULT_KEEPALIVE_COUNT
    if config.get("Ciphers") is None and _cpu_has_aes():
        chosen["encryption_algs"] = _gcm_first(asyncssh.encryption.get_default_encryption_algs())
    return chosen


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
