"""What a command runs with, as it was registered: one ``Spec`` shared by every command registered alike.

A campaign of a million commands registers them with a few sets of options (a runner, a timeout, retries,
an environment): the options are kept once per set, not once per command. A handle holds its ``Spec``, and
reads and writes each option through a :class:`SpecField` as if it were its own; a write gives the handle a
changed copy (``Spec.but``), so a shared ``Spec`` never changes under the other commands that share it.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from ._command_options import COMMAND, SHARED

# the shared options (``_command_options``), then what registration derives from them
_DEFAULTS: dict[str, Any] = {**{option.name: option.default for option in COMMAND.kept("spec")},
                             "candidates": (), "base_env": None, "work_generated": False, "resume_check": False}

FIELDS = tuple(_DEFAULTS)
assert FIELDS[:len(SHARED)] == SHARED
INTERNED_AT_MOST = 1024  # distinct specs kept for sharing (commands all unlike each other share none)


class Spec:
    """The options of a command that commands registered alike have in common, and the run's ``Completion``.
    Never changed once made (see ``but``)."""

    __slots__ = ("completion", *_DEFAULTS)

    def __init__(self, completion: Any, **options: Any) -> None:
        self.completion = completion
        for name, default in _DEFAULTS.items():
            setattr(self, name, options.pop(name, default))
        if options:
            raise TypeError(f"not options of a command: {sorted(options)}")

    @classmethod
    def made(cls, completion: Any, values: dict[str, Any], base_env: Any, work_generated: bool,
             resume_check: bool) -> Spec:
        """A spec of a command's checked options (``COMMAND.checked``: every option, some not shared) and what
        registration derived; its candidates are set once they are known (registration's fast path)."""
        spec = cls.__new__(cls)
        spec.completion = completion
        for name in SHARED:
            setattr(spec, name, values[name])
        spec.candidates, spec.base_env, spec.work_generated, spec.resume_check = \
            (), base_env, work_generated, resume_check
        return spec

    def but(self, **changed: Any) -> Spec:
        """A copy with some options changed."""
        return Spec(self.completion, **{**{name: getattr(self, name) for name in _DEFAULTS}, **changed})

    def key(self) -> tuple[Any, ...]:
        """Equal for specs that hold the same options (mappings compared by their items). The goal's variables
        (``base_env``) count by identity: ``setEnv()`` makes a new dict each time and none is ever changed, and
        an interned spec keeps its own alive, so no other dict has its id; every command holds the goal's."""
        values = (*_values_of(self), id(self.base_env))
        try:  # (most specs hold no other mapping nor list: their values are the key)
            hash(values)
            return values
        except TypeError:  # (a 2-tuple: never equal to a key of every slot)
            return (dict, tuple(_hashable(value) for value in values))


_values_of = attrgetter(*(name for name in Spec.__slots__ if name != "base_env"))


class SpecField(property):
    """A handle's attribute that is its Spec's option ``name`` (the handle may call it otherwise: ``pin`` is
    the spec's ``runner``). A property whose getter is ``attrgetter``'s C code: the engine reads a command's
    options a dozen times and more while it runs it, and a descriptor's ``__get__`` in Python took twice as
    long (0.11 against 0.06 µs a read)."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        if name:
            self._define(name)

    def __set_name__(self, owner: type, name: str) -> None:
        if not self.name:
            self.name = name
            self._define(name)

    def _define(self, name: str) -> None:
        def write(handle: Any, value: Any) -> None:  # (a changed copy: a shared spec never changes)
            handle._spec = handle._spec.but(**{name: value})
        property.__init__(self, attrgetter(f"_spec.{name}"), write)


def spec_fields(cls: type) -> None:
    """Give ``cls`` (a handle) a SpecField for each option its Spec holds, under the handle's name for it."""
    for option in COMMAND.kept("spec"):
        setattr(cls, option.field, SpecField(option.name))


class Specs:
    """Specs made once for each distinct set of options (up to INTERNED_AT_MOST of them)."""

    def __init__(self) -> None:
        self._known: dict[tuple[Any, ...], Spec] = {}

    def shared(self, spec: Spec) -> Spec:
        """An equal spec made before, or this one."""
        try:
            key = spec.key()
        except TypeError:  # (an option no key can hold: kept as it is, unshared)
            return spec
        known = self._known.get(key)
        if known is not None:
            return known
        if len(self._known) < INTERNED_AT_MOST:
            self._known[key] = spec
        return spec


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return (dict, tuple(sorted((k, _hashable(v)) for k, v in value.items())))
    if isinstance(value, list):
        return (list, tuple(_hashable(v) for v in value))
    hash(value)
    return value
