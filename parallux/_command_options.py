"""The options of a command (``schd()``, ``run()``, ``runner.run()``), each written once: :data:`COMMAND`.

Registration (``_registration``) checks a call's options with it; the options the commands registered alike
share are kept in their ``Spec`` (``_spec``) -- its fields are this table's ``kept="spec"`` options -- and the
handle reads them from there (``_handles``); ``result.json`` and ``Result`` take theirs from the flags. The
reference's "Command options" table is compared with it (tests/test_docs.py). To add an option: one
``Option`` below, in the reference's order, and its row in docs/reference.md.
"""

from __future__ import annotations

from typing import Any, Mapping

from . import _options as opt
from ._errors import ConfigError
from ._gpus import gpu_request
from ._memory import memory_limit
from ._metrics import metrics_option
from ._option import Option, Options


def _threads_and_cores(values: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``cores=[...]`` implies ``threads=len(cores)``; an explicit different ``threads`` is a contradiction."""
    cores = values["cores"]
    if cores is not None:
        if "threads" in given and values["threads"] != len(cores):
            raise ConfigError(f"threads={values['threads']} contradicts cores={list(cores)} ({len(cores)} cores)")
        values["threads"] = len(cores)
    return values


COMMAND = Options(
    Option("name", None, lambda v: opt.name(v, "name"), "`str`", '`"job<N>"` (N: submission number)',
           kept="handle", record=True, result=True),
    Option("threads", 1, lambda v: opt.positive_int(v, "threads"), "int ≥ 1", "`1` (`len(cores)` with `cores`)",
           kept="spec", record=True),
    Option("numa_node", None, opt.numa_node, "`int`", "`None`", kept="spec", attribute="requested_numa_node"),
    Option("cores", None, opt.core_list, "list of int", "`None`", kept="spec", attribute="requested_cores"),
    Option("gpus", None, gpu_request, "int ≥ 0 (a count), or a list of int (exactly these indices)", "`None`",
           kept="spec", attribute="requested_gpus"),
    Option("env", None, lambda v: opt.environment(v, "env"), "`dict[str, str]`", "`None`", kept="spec"),
    Option("cwd", None, lambda v: opt.path(v, "cwd"), "path", "`None`: the work dir", kept="spec"),
    Option("work_relpath", None, None, "relative path", "generated: `<run id>/<NNNNN>[_<name>]`",
           kept="handle", record=True, result=True),  # (checked with the others of the run: unique)
    Option("check", True, lambda v: opt.boolean(v, "check"), "`bool`", "`True`", kept="spec", result=True),
    Option("timeout", None, lambda v: opt.seconds(v, "timeout"), "seconds (> 0, finite)", "`None`", kept="spec",
           result=True),
    Option("memory", None, memory_limit, 'bytes (int), or a size: `"512M"`, `"2G"`, `"1.5G"`, `"64K"` (binary '
           "units: `K` = 1024; `MB`, `MiB` mean `M`)", "`None`", kept="spec", result=True),
    Option("runner", None, None, "`Runner` or name", "`None`", kept="spec", attribute="pin"),  # (in the pool?)
    Option("retries", 0, lambda v: opt.positive_int(v, "retries", minimum=0), "int ≥ 0",
           "`goal.setRetries()` / `--retries` (`0`)", kept="spec"),
    Option("retry_on", None, opt.retry_on, 'collection of `"failed"`, `"timeout"`, `"oom"`, `"error"` and exit '
           "statuses (int 1–255)", "`goal.setRetries(retry_on=)`, else all four statuses", kept="spec"),
    Option("repeat", 1, lambda v: opt.positive_int(v, "repeat"), "int ≥ 1", "`1`"),
    Option("warmup", 0, lambda v: opt.positive_int(v, "warmup", minimum=0), "int ≥ 0", "`0`"),
    Option("inputs", None, None, "list of local paths", "`None`", kept="handle", record=True),  # (files: now)
    Option("after", None, None, "a command handle, a group handle, or a list of them", "`None`",
           kept="handle"),  # (handles of this run)
    Option("metrics", None, lambda v: metrics_option(v) if v is not None else None, "`dict[str, str | None]`",
           "`None`", kept="spec"),
    finish=_threads_and_cores)

COMMAND_OPTIONS = COMMAND.names
# the options commands registered alike share (a ``Spec``'s fields)
SHARED = tuple(option.name for option in COMMAND.kept("spec"))


def refuse_positionals(where: str, command: Any, extra: tuple[Any, ...]) -> None:
    """``schd()``/``run()`` without a command, or with more than one positional argument."""
    if command is opt.MISSING:
        raise ConfigError(f"{where}: the command is missing (a shell command line or a list of arguments)")
    raise ConfigError(f"{where} takes one positional argument, the command, not {1 + len(extra)} (extra: "
                      f"{', '.join(repr(e) for e in extra)}); the options are keywords: "
                      f"{', '.join(f'{o}=...' for o in COMMAND.names)}")
