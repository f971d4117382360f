"""The options of a runner, each written once: :data:`RUNNER` (every kind's), :data:`SSH` and :data:`SLURM`.

``goal.local()``, ``goal.ssh()`` and ``goal.slurm()`` take their signatures from these tables (so
``inspect.signature`` and the did-you-mean of an unknown keyword show them) and check their values with them;
the seat gets the checked values; the run log's ``runner`` event takes the options flagged ``log``; a Slurm
allocation request the ``kept="request"`` ones. The reference's runner option tables ("Runner options", "SSH
runners take, in addition", "Slurm runners") are compared with them (tests/unit/test_docs.py). To add an option:
one ``Option`` below, in the reference's order, and its row in docs/reference.md.

The SSH options are checked by the SSH transport (``_ssh._connect``), which imports asyncssh: checking a call
of ``goal.ssh()`` here imports nothing of it.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from . import _options as opt
from ._cores import parse_core_layout
from ._errors import ConfigError
from ._gpus import gpu_offer
from ._memory import memory_limit
from ._option import NOT_GIVEN, Option, Options

SLURM_TIME = re.compile(r"(\d+-)?\d+(:\d+){0,2}|UNLIMITED|INFINITE", re.IGNORECASE)
ASKS_GPUS = re.compile(r"--(gres|gpus[a-z-]*)(=|$)|-G")  # sbatch's options that ask for GPUs


def _layout(values: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The core pool and its NUMA nodes, parsed once, as ``layout`` (None: no pool)."""
    layout = parse_core_layout(values["core_pool"], values["numa_nodes"])
    if values["whole_cores"] and layout is None:
        raise ConfigError("whole_cores=True needs core_pool or numa_nodes: it says how leases of their cores "
                          "are made")
    values["layout"] = layout
    return values


def _view(runner: Any) -> Any:
    return runner._seat.view  # (what a Runner handle's seat publishes: its workspace, its core layout)


def _core_pool(runner: Any) -> list[int] | None:
    layout = _view(runner).layout
    return list(layout.cores) if layout is not None else None


def _numa_nodes(runner: Any) -> dict[str, list[int]] | None:
    layout = _view(runner).layout
    return ({str(n): list(c) for n, c in layout.nodes.items()} or None) if layout is not None else None


RUNNER = Options(
    Option("name", opt.MISSING, None, "`str`", '`"local"` (`goal.local`); required (`goal.ssh`)',
           log=lambda runner: runner.name),  # (checked by the pool: unique in the run)
    Option("workspace", None, lambda v: opt.path(v, "workspace"), "path", "`~/parallux`",
           log=lambda runner: _view(runner).workspace),
    Option("max_jobs", None, lambda v: opt.optional_int(v, "max_jobs"), "int ≥ 1", "the runner's logical CPU count",
           log=lambda runner: runner.max_jobs),
    Option("env", None, lambda v: opt.environment(v, "a runner's env"), "`dict[str, str]`", "`{}`"),
    Option("core_pool", None, None, "range, list, tuple or set of int", "`None`", log=_core_pool),  # (_layout)
    Option("numa_nodes", None, None, "`dict[int, range | list | ...]`", "`None`", log=_numa_nodes),  # (_layout)
    Option("membind", False, lambda v: opt.boolean(v, "membind"), "`bool`", "`False`", keyword_only=True),
    Option("whole_cores", False, lambda v: opt.boolean(v, "whole_cores"), "`bool`", "`False`", keyword_only=True),
    Option("gpus", None, gpu_offer, "`None`, or a list of int", "`None`", keyword_only=True),
    Option("memory_pool", None, lambda v: memory_limit(v, "memory_pool"), "bytes (int), or a size as `memory=` "
           'takes it (`"64G"`)', "the machine's memory less 10%", keyword_only=True),
    finish=_layout)

SSH = Options(  # (NOT_GIVEN: the SSH config's, or parallux's default, applies)
    Option("host", None, None, "`str`", "`name`"),
    Option("user", None, None, "`str`", "the SSH config's `User`, else the local user"),
    Option("port", None, None, "int 1–65535", "the SSH config's `Port`, else 22"),
    Option("identity_file", NOT_GIVEN, None, "path or list of paths", "keys of the SSH config / agent / "
           "`~/.ssh/id_*`", keyword_only=True),
    Option("client_keys", NOT_GIVEN, None, "path or list of paths", "as `identity_file`", keyword_only=True),
    Option("passphrase", NOT_GIVEN, None, "`str`", "`None`", keyword_only=True),
    Option("agent", NOT_GIVEN, None, "path, `None` or `False`", "`$SSH_AUTH_SOCK`", keyword_only=True),
    Option("known_hosts", NOT_GIVEN, None, "path or list of paths, or `None`",
           "`~/.ssh/known_hosts` (and the SSH config's)", keyword_only=True),
    Option("ssh_config", NOT_GIVEN, None, "path or list of paths, or `None`", "`~/.ssh/config` when readable",
           keyword_only=True),
    Option("connect_timeout", NOT_GIVEN, None, "seconds (> 0)", "the SSH config's `ConnectTimeout`, else `15`",
           keyword_only=True),
    Option("keepalive", NOT_GIVEN, None, "seconds (> 0), `0` or `None`",
           "the SSH config's `ServerAliveInterval`, else `15`", keyword_only=True),
    Option("keepalive_count", NOT_GIVEN, None, "int ≥ 1", "the SSH config's `ServerAliveCountMax`, else `3`",
           keyword_only=True),
    Option("watchdog", NOT_GIVEN, None, "seconds (> 0)", "`60`", keyword_only=True),
    Option("reconnect", NOT_GIVEN, None, "seconds (≥ 0)", "`300`", keyword_only=True),
    Option("python", NOT_GIVEN, None, "`str`", "`/usr/bin/python3`, then `python3`", keyword_only=True))

# the SSH options the transport takes as keywords (not host, user, port: its own arguments)
SSH_OPTIONS = tuple(option.name for option in SSH if option.keyword_only)


def _slurm_time(value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and SLURM_TIME.fullmatch(value.strip())):
        raise ConfigError(f"time must be a Slurm time limit as sbatch --time takes it (\"30\" minutes, "
                          f"\"2:00:00\", \"1-12:00:00\"), not {value!r}")
    return value.strip() if value is not None else None


def _sbatch_options(value: Any) -> list[str]:
    """``sbatch_options``: a mapping (``{"mem": "4G", "exclusive": True}``) or a list of sbatch arguments."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        argv = []
        for key, item in value.items():
            if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", key):
                raise ConfigError(f"goal.slurm(): sbatch_options keys are sbatch option names, not {key!r}")
            flag = "--" + key.replace("_", "-")
            if item is True:
                argv.append(flag)
            elif item is not False and item is not None:
                argv.append(f"{flag}={item}")
        return argv
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return list(value)
    raise ConfigError(f"goal.slurm(): sbatch_options must be a mapping of sbatch options or a list of sbatch "
                      f"arguments, not {value!r}")


def _gpus_once(values: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """GPUs asked with ``gpus_per_node`` and in ``sbatch_options`` too: two requests sbatch would merge its
    own way, and the launchers' steps would ask for the first only."""
    gpus, extra = values["gpus_per_node"], values["sbatch_options"] or ()
    if gpus is not None and any(ASKS_GPUS.match(arg) for arg in extra):
        raise ConfigError(f"gpus_per_node={gpus} and sbatch_options both ask for GPUs ({' '.join(extra)}); ask "
                          "once: gpus_per_node= also gives each node's launcher its GPUs")
    return values


def _word(name: str) -> Option:
    return Option(name, None, lambda v: None if v is None else opt.name(v, name), "`str`", "the site's defaults",
                  keyword_only=True, kept="request", sbatch=True)


SLURM = Options(  # (all keyword-only: goal.slurm(name, *, ...))
    Option("nodes", None, lambda v: opt.optional_int(v, "nodes"), "int ≥ 1 or `None`", "`None`",
           keyword_only=True, kept="request"),
    *(_word(name) for name in ("partition", "account", "qos", "constraint")),  # (one row of the reference)
    Option("time", None, _slurm_time, "`str`", "the partition's default", keyword_only=True, kept="request",
           sbatch=True),
    Option("cpus_per_node", None, lambda v: opt.optional_int(v, "cpus_per_node"), "int ≥ 1",
           "`None`: whole nodes (`--exclusive`)", keyword_only=True, kept="request"),
    Option("gpus_per_node", None, lambda v: opt.optional_int(v, "gpus_per_node"), "int ≥ 1", "`None`: no GPUs",
           keyword_only=True, kept="request"),
    Option("sbatch_options", None, _sbatch_options, "mapping or list of `str`", "`None`", keyword_only=True,
           kept="request", attribute="extra"),
    Option("python", "python3", lambda v: opt.name(v, "python"), "`str`", '`"python3"`', keyword_only=True),
    Option("login", None, None, "SSH runner, runner name or host", "`None`: Slurm's commands run here",
           keyword_only=True),  # (checked by the pool: an SSH runner's)
    finish=_gpus_once)
