"""The config's declared arguments: ``goal.arg(name, default=None, type=str, help=None)``.

``goal.args`` takes any ``key=value``, so a misspelt key (``size=128`` meant for ``sizes=``) would silently
run the defaults. Once a config declares an argument, every ``key=`` on the command line must be one it
declares: checked when the config submits its first command or ends, whichever comes first -- by then it
has declared what it reads, and nothing has run yet.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from . import _options as opt
from ._errors import ConfigError

BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


@dataclass(frozen=True)
class Declared:
    """One ``goal.arg()`` declaration and the value it gave."""

    name: str
    default: Any
    type: Callable[[str], Any]
    help: str | None
    value: Any
    given: str | None  # the text on the command line; None: the value is the default


class Arguments:
    """What the config declared, against what the command line gave (``goal.args``)."""

    def __init__(self, given: Mapping[str, str], show: Callable[[str], None] | None = None) -> None:
        self.given = given
        self.declared: dict[str, Declared] = {}
        self._show = show  # a dry run lists each declared argument and its value, as a line of the plan
        self._settled = False

    def declare(self, name: object, default: Any, kind: Any, help: object) -> Any:
        """The value of ``name=`` converted by ``kind``, or ``default``."""
        name = argument_name(name)
        if not callable(kind):
            raise ConfigError(f"type of {name!r} must be str, int, float, bool or a function of the text, "
                              f"not {kind!r}")
        if help is not None and not isinstance(help, str):
            raise ConfigError(f"help of {name!r} must be a str, not {help!r}")
        earlier = self.declared.get(name)
        if earlier is not None:
            if earlier.type is not kind or not same(earlier.default, default):
                raise ConfigError(f"{name!r} is declared twice, with different defaults or types "
                                  f"(first default={earlier.default!r}, type={type_name(earlier.type)})")
            return earlier.value
        text = self.given.get(name)
        value = default if text is None else convert(name, text, kind)
        self.declared[name] = Declared(name, default, kind, help, value, text)
        if self._show is not None:
            self._show(plan_line(self.declared[name]))
        return value

    def check(self) -> None:
        """Every ``key=`` of the command line declared, once the config has declared any; cheap after the
        first check that passed (``goal.run()`` calls it for each command)."""
        if self._settled or not self.declared:
            return
        unknown = [key for key in self.given if key not in self.declared]
        if unknown:
            error = ConfigError(opt.unknown_names_message("the command line", unknown, list(self.declared),
                                                          "argument")
                                + " (declared with goal.arg()); nothing was started")
            error._call_named = True  # type: ignore[attr-defined]  # about the command line, not the call
            raise error
        self._settled = True


def argument_name(name: object) -> str:
    if not isinstance(name, str) or not name or "=" in name or name.startswith("-") or "\0" in name:
        raise ConfigError(f"the name must be a non-empty str without '=' that does not begin with '-' "
                          f"(as in name=value on the command line), not {name!r}")
    return name


def convert(name: str, text: str, kind: Callable[[str], Any]) -> Any:
    """``text`` as ``kind`` says; a ConfigError naming the argument and the value if it cannot be."""
    if kind is bool:
        if text.lower() not in BOOLEAN_WORDS:
            raise ConfigError(f"argument {name!r}: {text!r} is not a bool (give true/false, yes/no or 1/0)")
        return BOOLEAN_WORDS[text.lower()]
    try:
        return kind(text)
    except Exception as exc:  # a config's own function may raise anything: the message says what
        reason = f": {type(exc).__name__}: {exc}" if kind not in (builtins.int, builtins.float) else ""
        raise ConfigError(f"argument {name!r}: {text!r} is not a valid {type_name(kind)}{reason}") from exc


def type_name(kind: Callable[[str], Any]) -> str:
    return getattr(kind, "__name__", repr(kind))


def same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:  # (an object whose == refuses to say: then only itself is the same)
        return False


def plan_line(declared: Declared) -> str:
    """``arg sizes=[8, 16] (given: sizes=8,16) -- matrix sizes to try``."""
    source = "default" if declared.given is None else f"given: {declared.name}={declared.given}"
    return (f"arg {declared.name}={declared.value!r} ({source})"
            + (f" -- {declared.help}" if declared.help else ""))
