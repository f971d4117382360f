"""Validation of everything a config passes in: call signatures, command options, runner options, environments.

Every check raises :class:`ConfigError` at the call that received the bad value, naming it, so that a typo in
a 10,000-command campaign fails before the first command starts rather than an hour into the run.

Calls are checked on one path: :func:`checked` wraps a ``goal``/runner method so that a call Python itself
would refuse (an unknown keyword, a missing or surplus argument) raises a ConfigError naming the call, the
keyword, the closest valid one and all of them -- never a bare TypeError -- so that an argument holding a NUL
byte is refused before the method runs (:func:`refuse_nuls`), and so that a ConfigError about one of its
values names the call. ``schd()`` and ``run()``, called 100,000 times in a big campaign, are not wrapped: they
take ``**options`` (checked with their table, ``_command_options``), refuse a missing command or surplus
positional arguments themselves (``_command_options.refuse_positionals``), which costs one comparison, and
pass the command and options to :func:`refuse_nuls` themselves.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import os
import posixpath
import re
import shlex
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from ._errors import ConfigError
from ._nul import refuse_nuls

ORDER_MODES = ("interleave", "shuffle", "grouped")  # goal.setOrder(): how a benchmark's executions are queued
RETRYABLE_STATUSES = ("failed", "timeout", "oom", "error")
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "<missing>"})()  # an argument not given

F = TypeVar("F", bound=Callable[..., Any])


def check_option_names(options: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = [name for name in options if name not in allowed]
    if unknown:
        raise ConfigError(unknown_names_message(where, unknown, allowed, "option"))


def unknown_names_message(where: str, unknown: Iterable[str], allowed: Sequence[str], noun: str) -> str:
    """``goal.local(): unknown option 'max_job' (did you mean 'max_jobs'?); the options are: ...``."""
    described = []
    for name in sorted(unknown, key=str):
        close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
        described.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    plural = "s" if len(described) > 1 else ""
    return f"{where}: unknown {noun}{plural} {', '.join(described)}; the {noun}s are: {', '.join(allowed)}"


def checked(where: str | Callable[[tuple[Any, ...]], str], *, noun: str = "keyword",
            extra_keywords: Sequence[str] = ()) -> Callable[[F], F]:
    """Make ``fn``'s calls refuse bad arguments with a ConfigError naming the call (see the module docstring).

    ``where`` is how the message names the call (``"goal.local()"``), or a function of the call's arguments
    giving it (a runner's methods are named after the runner). ``extra_keywords``: the names a ``**kwargs``
    of ``fn`` accepts (goal.ssh()'s SSH options); any other keyword is refused before ``fn`` runs. The
    success path costs one Python call and a ``try``: fine for setup calls, not for ``schd()``.
    """
    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)
        parameters = [p for p in signature.parameters.values() if p.name != "self"]
        valid = [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        valid += [name for name in extra_keywords if name not in valid]
        positional = [p.name for p in signature.parameters.values() if p.kind in (p.POSITIONAL_ONLY,
                                                                                  p.POSITIONAL_OR_KEYWORD)]

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if extra_keywords and not kwargs.keys() <= set(valid):
                raise ConfigError(unknown_names_message(name_of(args), set(kwargs) - set(valid), valid, noun))
            try:
                refuse_nuls(argument_names(positional, args, kwargs))
                return fn(*args, **kwargs)
            except TypeError:
                problem = call_problem(signature, args, kwargs)
                if problem is None:  # raised inside fn, not by the call itself: not ours to translate
                    raise
                raise ConfigError(describe_problem(name_of(args), problem, valid, noun)) from None
            except ConfigError as exc:
                name_the_call(exc, name_of(args))
                raise

        def name_of(args: tuple[Any, ...]) -> str:
            return where(args) if callable(where) else where

        call.__checked__ = True  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]
    return decorate


def argument_names(positional: Sequence[str], args: tuple[Any, ...], kwargs: dict[str, Any]
                   ) -> Iterator[tuple[str, Any]]:
    """A call's arguments with the names its messages give them: the parameter's, or ``argument N``."""
    for index, value in enumerate(args):
        yield (positional[index] if index < len(positional) else f"argument {index + 1}"), value
    yield from kwargs.items()


def call_problem(signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> tuple[str, Any] | None:
    """Why Python refused this call of a function with this signature; None when it would accept it."""
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        parameters = list(signature.parameters.values())
        kinds = {p.kind for p in parameters}
        named = {p.name: p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if inspect.Parameter.VAR_KEYWORD not in kinds:
            unknown = [k for k in kwargs if k not in named or named[k].kind is inspect.Parameter.POSITIONAL_ONLY]
            if unknown:
                return "unknown", unknown
        positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if inspect.Parameter.VAR_POSITIONAL not in kinds and len(args) > len(positional):
            return "positional", (positional, len(args))
        twice = [p.name for p in positional[:len(args)] if p.name in kwargs]
        if twice:
            return "twice", twice
        given = {p.name for p in positional[:len(args)]} | set(kwargs)
        missing = [p.name for p in named.values() if p.default is p.empty and p.name not in given]
        if missing:
            return "missing", missing
        return "other", str(exc)
    return None


def describe_problem(where: str, problem: tuple[str, Any], valid: Sequence[str], noun: str) -> str:
    kind, detail = problem
    if kind == "unknown":
        return unknown_names_message(where, detail, valid, noun)
    if kind == "positional":
        positional, given = detail
        names = [p.name for p in positional if p.name != "self"]
        count = given - (len(positional) - len(names))
        if not valid:
            return f"{where} takes no arguments, not {count}"
        if not names:
            return f"{where} takes no positional arguments, not {count}; the {noun}s are: {', '.join(valid)}"
        return (f"{where} takes at most {len(names)} positional argument{'s' if len(names) != 1 else ''} "
                f"({', '.join(names)}), not {count}; give the others by keyword "
                f"(the {noun}s are: {', '.join(valid)})")
    if kind == "twice":
        return f"{where}: {', '.join(map(repr, detail))} given twice, by position and by keyword"
    if kind == "missing":
        plural = "s" if len(detail) > 1 else ""
        return (f"{where}: missing the argument{plural} {', '.join(map(repr, detail))} "
                f"(the {noun}s are: {', '.join(valid)})")
    return f"{where}: {detail}"


def name_the_call(exc: ConfigError, where: str) -> None:
    """Make ``exc`` say which call it is about, once (the innermost checked call names it)."""
    if getattr(exc, "_call_named", False) or not exc.args or not isinstance(exc.args[0], str):
        return
    message = exc.args[0]
    stem = where.split("(", 1)[0] + "("   # "goal.local("
    short = stem.split(".", 1)[-1]          # "local(": messages such as "setParallel(n) must be ..."
    if message.startswith(short) and not message.startswith(stem):
        message = stem[:-len(short)] + message
    elif not message.startswith(stem):
        message = f"{where}: {message}"
    exc.args = (message, *exc.args[1:])
    exc._call_named = True  # type: ignore[attr-defined]


def check_public_methods(cls: type, where: Callable[[str], Callable[[tuple[Any, ...]], str]],
                         exempt: Iterable[str] = ()) -> None:
    """Wrap every public method ``cls`` defines with :func:`checked`, so that a subclass (another kind of
    runner, a new method) is checked without anyone remembering to. ``where(method)`` names the call."""
    for attribute, value in list(vars(cls).items()):
        if attribute.startswith("_") or attribute in exempt or not inspect.isfunction(value):
            continue
        if not getattr(value, "__checked__", False):
            setattr(cls, attribute, checked(where(attribute))(value))


def command_text(command: object) -> str:
    """The shell command line to run: a string as given, a list of arguments quoted with ``shlex.join``."""
    if isinstance(command, str):
        if not command.strip():
            raise ConfigError("the command is empty")
        return command
    if isinstance(command, (list, tuple)) and command:
        parts = [os.fspath(a) if isinstance(a, os.PathLike) else a for a in command]
        if not all(isinstance(a, str) for a in parts):
            bad = next(a for a in parts if not isinstance(a, str))
            raise ConfigError(f"every argument of a command list must be a str, not {type(bad).__name__} "
                              f"({bad!r}) in {list(command)!r}")
        return shlex.join(parts)
    raise ConfigError(f"a command is a shell command line (str) or a non-empty list of arguments, "
                      f"not {type(command).__name__}: {command!r}")


def positive_int(value: object, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be an int, not {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ConfigError(f"{what} must be >= {minimum}, not {value}")
    return value


def optional_int(value: object, what: str, minimum: int = 1) -> int | None:
    return None if value is None else positive_int(value, what, minimum)


def seconds(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} must be a number of seconds, not {type(value).__name__} ({value!r})")
    if not value > 0 or math.isinf(value) or math.isnan(value):
        raise ConfigError(f"{what} must be a positive number of seconds, not {value!r}")
    return float(value)


def boolean(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{what} must be True or False, not {value!r}")
    return value


def environment(value: object, what: str) -> dict[str, str]:
    """An env mapping of str to str; numbers are refused rather than guessed at."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be a dict of str to str, not {type(value).__name__}")
    for key, item in value.items():
        env_pair(key, item, what)
    return dict(value)


def env_pair(key: object, value: object, what: str) -> None:
    """(A NUL byte, in a name or a value, was refused with the call: see refuse_nuls.)"""
    if not isinstance(key, str) or not key or "=" in key:
        raise ConfigError(f"{what}: {key!r} is not a valid environment variable name")
    if not isinstance(value, str):
        raise ConfigError(f"{what}: the value of {key} must be a str, not {type(value).__name__} "
                          f"({value!r}); write {str(value)!r} if that is what you mean")


def name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what} must be a non-empty str, not {value!r}")
    return value


def path(value: object, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} must be a path (str), not {value!r}")
    return value


_NORMAL_RELPATH = re.compile(r"[\w-][\w.-]*(?:/[\w-][\w.-]*)*", re.ASCII)  # (no '.', '..', '//', end '/')


def work_relpath(value: object) -> str:
    """A work_relpath: relative, without '..', normalised (``a//b/./c/`` -> ``a/b/c``)."""
    if type(value) is str and _NORMAL_RELPATH.fullmatch(value):  # (already one: a campaign's "123", "a/b")
        return value
    text = path(value, "work_relpath")
    assert text is not None
    if text.startswith("/") or text.startswith("~"):
        raise ConfigError(f"work_relpath must be relative to the runner's workspace, not {text!r}")
    if ".." in text.split("/"):
        raise ConfigError(f"work_relpath must not contain '..': {text!r}")
    normal = posixpath.normpath(text)
    if normal in (".", ""):
        raise ConfigError(f"work_relpath must name a directory inside the workspace, not {text!r}")
    return normal


def core_list(value: object) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"cores must be a list of core ids, not {value!r}")
    cores = tuple(value)  # type: ignore[arg-type]
    if not cores:
        raise ConfigError("cores must not be empty")
    for core in cores:
        if isinstance(core, bool) or not isinstance(core, int) or core < 0:
            raise ConfigError(f"cores must hold non-negative int core ids, not {core!r}")
    if len(set(cores)) != len(cores):
        raise ConfigError(f"cores lists a core twice: {list(cores)}")
    return tuple(sorted(cores))


def numa_node(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"numa_node must be an int node id, not {value!r}")
    return value


def retry_on(value: object, what: str = "retry_on") -> frozenset[str | int] | None:
    """The outcomes to retry: statuses ("failed", "timeout", "oom", "error") and exit statuses (ints, meaning
    "failed with that status"). None: the default, every one of these statuses."""
    if value is None:
        return None
    items = [value] if isinstance(value, (str, int)) else value
    if isinstance(items, (bytes, dict)) or not hasattr(items, "__iter__"):
        raise ConfigError(f"{what} must be a collection of statuses {RETRYABLE_STATUSES} and exit statuses "
                          f"(int), not {value!r}")
    outcomes: set[str | int] = set()
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ConfigError(f"{what}: {item!r} is neither a status {RETRYABLE_STATUSES} nor an exit status (int)")
        if isinstance(item, str) and item not in RETRYABLE_STATUSES:
            raise ConfigError(f"{what}: {item!r} is not a status that can be retried; those are: "
                              f"{', '.join(RETRYABLE_STATUSES)}")
        if isinstance(item, int) and not 0 < item < 256:
            raise ConfigError(f"{what}: exit status {item} is out of range (1 to 255)")
        outcomes.add(item)
    return frozenset(outcomes)


def input_paths(value: object, must_exist: bool = True) -> tuple[str, ...]:
    """inputs=[path, ...]: local files or directories that must exist now (in a dry run, where the commands
    that would make them never ran, they need not); made absolute."""
    if value is None:
        return ()
    items = [value] if isinstance(value, (str, os.PathLike)) else value
    if isinstance(items, (bytes, dict)) or not hasattr(items, "__iter__"):
        raise ConfigError(f"inputs must be a list of paths, not {value!r}")
    paths = []
    for item in items:  # type: ignore[union-attr]
        text = path(item, "an entry of inputs")
        assert text is not None
        absolute = os.path.abspath(os.path.expanduser(text))
        if must_exist and not os.path.exists(absolute):
            raise ConfigError(f"inputs: no such file or directory: {text!r}")
        paths.append(absolute)
    return tuple(dict.fromkeys(paths))


def safe_name(text: str, limit: int = 60) -> str:
    """Text made safe for a path component (used in generated work paths)."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in text)
    return cleaned.strip("._")[:limit]


# -- the paths of put() and get() ---------------------------------------------------------------------------

def local_path(value: object, where: str) -> str:
    """A local path argument, absolute (relative: to the directory parallux was started in; ``~`` is
    expanded). A trailing ``/`` is kept: it means "into this directory" for a single file."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str) or not text:
        raise ConfigError(f"{where}: local must be a path (a non-empty str or os.PathLike), not {value!r}")
    absolute = os.path.abspath(os.path.expanduser(text))
    return absolute + "/" if text.endswith("/") and absolute != "/" else absolute


def remote_text(value: object, where: str, what: str = "remote") -> str:
    """A remote path argument as given (a str or a path object); resolved by ``Runner._remote_path``."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str) or not text:
        raise ConfigError(f"{where}: {what} must be a path on the runner (a non-empty str), not {value!r}")
    return text
