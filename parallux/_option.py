"""An option list that is data: each option of a call written once, as an :class:`Option` of an :class:`Options`.

The tables themselves are ``_command_options`` (``schd()``'s) and ``_runner_options`` (``goal.local()``'s,
``goal.ssh()``'s, ``goal.slurm()``'s). Everything else reads them: the names a call accepts and the
did-you-mean for the others, each given value's check, the defaults, the signature ``inspect.signature``
shows, what the run log and ``result.json`` keep -- and tests/test_docs.py compares the reference's option
tables (name, type, default) with them. Adding an option is one :class:`Option` (and its row in the
reference).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Iterable, Iterator, Mapping

from ._errors import ConfigError
from ._options import MISSING, unknown_names_message

Check = Callable[[Any], Any]
# the default of an option passed on only when given (an SSH option: else the SSH config's, or parallux's)
NOT_GIVEN: Any = type("NotGiven", (), {"__repr__": lambda self: "<not given>"})()


@dataclasses.dataclass(frozen=True)
class Option:
    """One option: its name, its default, how a given value is checked, and what the reference says of it.

    ``check(value)`` returns the value as it is kept, or raises a ConfigError naming the option; ``None``:
    checked where its context is (the pool of a runner= pin, the files of inputs=, the transport of an SSH
    option). ``default`` is the value kept when it is not given (``MISSING``: required, or passed on only
    when given). ``doc_type`` and ``doc_default`` are the reference's Type and Default cells, verbatim."""

    name: str
    default: Any
    check: Check | None
    doc_type: str
    doc_default: str
    keyword_only: bool = False  # (a runner option: positional up to the first keyword-only one)
    kept: str = ""        # a command's: "spec" (shared by commands registered alike), "handle", "" (consumed)
    attribute: str = ""   # the handle's name for it, where not ``name`` (``pin`` for runner=)
    record: bool = False  # a command's: written to its result.json (``--resume`` reads it back)
    result: bool = False  # a command's: a field of its Result, read from the handle
    log: Callable[[Any], Any] | None = None  # a runner's: its value in the run log's runner event, from the runner
    sbatch: bool = False  # a Slurm runner's: passed to sbatch as ``--<name>=<value>`` when given

    @property
    def field(self) -> str:
        return self.attribute or self.name


class Options:
    """The options of one call (or part of one), in the reference's order; never changed once made.

    ``finish(values, given)``, if any, checks what one option cannot check alone (``threads`` against
    ``cores``) and returns the values it may have completed."""

    __slots__ = ("options", "names", "defaults", "_checks", "_allowed", "_finish")

    def __init__(self, *options: Option,
                 finish: Callable[[dict[str, Any], Mapping[str, Any]], dict[str, Any]] | None = None) -> None:
        names = tuple(option.name for option in options)
        if len(set(names)) != len(names):
            raise ValueError(f"an option is defined twice: {names}")
        for slot, value in (("options", options), ("names", names),
                            ("defaults", _Frozen({o.name: o.default for o in options})),
                            ("_checks", {o.name: o.check for o in options if o.check is not None}),
                            ("_allowed", frozenset(names)), ("_finish", finish)):
            object.__setattr__(self, slot, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"an option table is never changed: cannot set {name}")

    def __iter__(self) -> Iterator[Option]:
        return iter(self.options)

    def __add__(self, other: Options) -> Options:
        """Both tables' options, these first (a table's ``finish`` stays with the table: call it)."""
        return Options(*self.options, *other.options)

    def refuse_unknown(self, given: Iterable[str], where: str, allowed: Iterable[str] = ()) -> None:
        """The did-you-mean ConfigError for names that are no option here (nor in ``allowed``)."""
        extra = frozenset(allowed)
        unknown = [name for name in given if name not in self._allowed and name not in extra]
        if unknown:
            raise ConfigError(unknown_names_message(where, unknown, (*self.names, *extra), "option"))

    def checked(self, given: Mapping[str, Any], where: str, defaults: Mapping[str, Any] | None = None
                ) -> dict[str, Any]:
        """Every option's value: each given one checked, the others their default (``defaults`` overrides the
        table's: ``setRetries()``'s ``retries``). Only given values are checked, and once: ``schd()`` runs a
        million times, with few options each."""
        if not given.keys() <= self._allowed:
            self.refuse_unknown(given, where)
        checks = self._checks
        values = {**self.defaults, **defaults} if defaults else dict(self.defaults)
        for name, value in given.items():
            check = checks.get(name)
            values[name] = check(value) if check is not None else value
        return self._finish(values, given) if self._finish is not None else values

    def part(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The given values of this table's options (a call's, whose options are of several tables)."""
        return {name: value for name, value in given.items() if name in self._allowed}

    def flagged(self, flag: str) -> tuple[Option, ...]:
        return tuple(option for option in self.options if getattr(option, flag))

    def kept(self, where: str) -> tuple[Option, ...]:
        return tuple(option for option in self.options if option.kept == where)

    def parameters(self, defaults: Mapping[str, Any] | None = None, positional: bool = True
                   ) -> list[inspect.Parameter]:
        """The options as parameters of a signature; ``positional=False``: all keyword-only."""
        defaults = defaults or {}
        return [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY if o.keyword_only or not positional
                                  else inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                  default=defaults.get(o.name, o.default) if o.default is not MISSING
                                  or o.name in defaults else inspect.Parameter.empty)
                for o in self.options]


def signature_of(*parameters: list[inspect.Parameter]) -> inspect.Signature:
    """A method's signature (``self`` first) from its tables' parameters: the positional ones in order, then
    the keyword-only ones in order; a keyword-only option with no default is a keyword-only parameter without
    one (required)."""
    flat = [parameter for group in parameters for parameter in group]
    kind = inspect.Parameter.KEYWORD_ONLY
    ordered = [p for p in flat if p.kind is not kind] + [p for p in flat if p.kind is kind]
    return inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *ordered])


class _Frozen(dict):  # type: ignore[type-arg]
    """The defaults of a table: a dict (so ``{**defaults}`` is one C call) that refuses to be changed."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("an option table's defaults are never changed")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _refuse  # type: ignore[assignment]
