"""``Rare``: an attribute most objects of a class lack, held in one dict of the object's when it has it.

A slot costs 8 bytes on every object; a million handles and results pay that for each field most of them
never set (an error, a signal, metrics, inputs, a retry's earlier attempts). Such fields are kept in one
slot holding a dict, made only for an object that has one of them; reading one it lacks gives its default
(an empty container freshly made, for a mutable one).
"""

from __future__ import annotations

from typing import Any


class Rare:
    """A class attribute: the field ``name`` of an object, kept in its dict slot ``store`` (None: none yet)."""

    __slots__ = ("name", "default", "store")

    def __init__(self, default: Any = None, store: str = "_more") -> None:
        self.default = default  # a value, or a type to call for an empty container
        self.store = store

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, owner_object: Any, owner: type | None = None) -> Any:
        if owner_object is None:
            return self
        held = getattr(owner_object, self.store)
        if held is not None and self.name in held:
            return held[self.name]
        default = self.default
        return default() if isinstance(default, type) else default

    def __set__(self, owner_object: Any, value: Any) -> None:
        held = getattr(owner_object, self.store)
        if held is None:
            if value is self.default or (value is None and self.default is None):
                return  # (the default: nothing to keep)
            held = {}
            setattr(owner_object, self.store, held)
        held[self.name] = value
