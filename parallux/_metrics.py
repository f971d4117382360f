"""``metrics=``: the figures a command reports itself, checked at the call that declares them.

The launcher does the reading, where the files are (see "metrics" in ``_launcher``): here a config's
``metrics={name: pattern}`` is refused at the call when the launcher could not use it -- a pattern that does
not compile, or with more than one group (which of them is the value?), a name that is no metric name or
that a measure parallux takes itself (``wall``, ``cpu``, ``memory``) already has.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Mapping

from ._errors import ConfigError
from ._launcher import MEASURES, METRIC_NAME


def metrics_option(value: object) -> dict[str, str | None] | None:
    """``metrics=``: name -> a regular expression searched in stdout (its first group, or the whole match,
    is the value), or None for a metric the command's ``$PARALLUX_METRICS`` file must give. None (or an
    empty dict): no metric is declared."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"metrics must be a dict of metric name to regular expression (or None for a metric "
                          f"the $PARALLUX_METRICS file gives), not {type(value).__name__}: {value!r}")
    for name, pattern in value.items():
        _check(name, pattern)
    return dict(value) or None


def _check(name: Any, pattern: Any) -> None:
    if not isinstance(name, str) or not METRIC_NAME.match(name):
        raise ConfigError(f"metrics: {name!r} is not a metric name (a letter or _, then letters, digits, _ . -; "
                          f"up to 64)")
    if name in MEASURES:
        raise ConfigError(f"metrics: {name!r} is a measure parallux takes itself ({', '.join(MEASURES)}); "
                          f"call the metric something else")
    if pattern is None:
        return
    if not isinstance(pattern, str):
        raise ConfigError(f"metrics: the pattern of {name!r} must be a str (a regular expression) or None (a "
                          f"metric from the $PARALLUX_METRICS file), not {type(pattern).__name__}: {pattern!r}")
    groups = _groups(pattern)
    if isinstance(groups, str):
        raise ConfigError(f"metrics: the pattern of {name!r} is not a regular expression: {groups} "
                          f"({pattern!r})")
    if groups > 1:
        raise ConfigError(f"metrics: the pattern of {name!r} has {groups} groups ({pattern!r}); its value is its "
                          f"first group or its whole match, so give it one at most (write the others (?:...))")


@functools.lru_cache(maxsize=256)
def _groups(pattern: str) -> int | str:
    """How many groups the pattern has (compiled as the launcher compiles it); what is wrong, as text."""
    try:
        return re.compile(pattern, re.MULTILINE).groups
    except re.error as exc:
        return str(exc)
