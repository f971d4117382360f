"""A misspelt method or attribute of ``goal`` or of a runner: a ConfigError naming the closest real one.

Python's own AttributeError would end the run with exit status 1, as a bug in the config does; a typo is bad
input, found before anything runs, like a misspelt keyword (``_options.checked``). The error is an
AttributeError too (:class:`~parallux._errors.UnknownAttributeError`), so ``hasattr()`` and
``getattr(obj, name, default)`` keep working, and names beginning with ``_`` (which protocols such as
``copy`` and ``pickle`` probe) get Python's plain AttributeError.
"""

from __future__ import annotations

import difflib
from typing import Any

from ._errors import UnknownAttributeError


class TypoChecked:
    """A base whose instances refuse an unknown public attribute with a did-you-mean ConfigError.

    ``_label`` is how the message names the object (``goal``; ``runner`` is followed by its name).
    """

    _label = "object"

    def __getattr__(self, name: str) -> Any:  # only called when the attribute is not found
        raise unknown_attribute(self, name)


def unknown_attribute(obj: Any, name: str) -> AttributeError:
    if name.startswith("_"):
        return AttributeError(f"{type(obj).__name__!r} object has no attribute {name!r}")
    if name in dir(type(obj)):  # a property whose getter raised AttributeError: Python asks here next
        return AttributeError(f"{type(obj).__name__}.{name} raised an AttributeError")
    own_name = vars(obj).get("name")  # (not obj.name: before __init__ set it, that would come back here)
    label = f"{obj._label} {own_name!r}" if isinstance(own_name, str) else obj._label
    public = sorted(n for n in dir(obj) if not n.startswith("_"))
    close = difflib.get_close_matches(name, public, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UnknownAttributeError(f"{label} has no method or attribute {name!r}{hint}; "
                                 f"its methods and attributes are: {', '.join(public)}")
