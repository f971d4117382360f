"""What a command runs with, as it was registered: one ``Spec`` shared by every command registered alike.

A campaign of a million commands registers them with a few sets of options (a runner, a timeout, retries,
an environment): the options are kept once per set, not once per command. A handle holds its ``Spec``, and
reads and writes each option through a :class:`SpecField` as if it were its own; a write gives the handle a
changed copy (``Spec.but``), so a shared ``Spec`` never changes under the other commands that share it.
"""

from __future__ import annotations

from typing import Any

_DEFAULTS: dict[str, Any] = {
    "threads": 1, "requested_numa_node": None, "requested_cores": None, "requested_gpus": None, "env": None,
    "cwd": None, "check": True, "timeout": None, "memory": None, "retries": 0, "pin": None, "candidates": (),
    "base_env": None, "retry_on": None, "metrics": None, "work_generated": False, "resume_check": False}

FIELDS = tuple(_DEFAULTS)
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

    def but(self, **changed: Any) -> Spec:
        """A copy with some options changed."""
        return Spec(self.completion, **{**{name: getattr(self, name) for name in _DEFAULTS}, **changed})

    def key(self) -> tuple[Any, ...]:
        """Equal for specs that hold the same options (mappings compared by their items)."""
        return tuple(_hashable(getattr(self, name)) for name in self.__slots__)


class SpecField:
    """A handle's attribute that is its Spec's option."""

    __slots__ = ("name",)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, handle: Any, owner: type | None = None) -> Any:
        if handle is None:
            return self
        return getattr(handle._spec, self.name)

    def __set__(self, handle: Any, value: Any) -> None:
        handle._spec = handle._spec.but(**{self.name: value})


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
