"""``goal.probe(name, command)``: a command run once on every machine of the run before its commands there --
``gcc --version``, ``git -C src rev-parse HEAD`` -- whose output the run log keeps (the first 4 KiB), so that
``parallux compare`` can say that run B had another compiler.

Declared in the config's thread, checked at the call, handed to the engine (``_engine._environment``), which
runs it on each machine. A probe is declared before the first command is submitted: it runs before the
commands of every machine, and once commands run there it could only run beside them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from . import _options as opt
from ._engine._environment import PROBE_TIMEOUT, Probe
from ._errors import ConfigError

if TYPE_CHECKING:
    from ._engine import Engine


class Probes:
    """The probes a config declared (main thread)."""

    def __init__(self, engine: Engine, *, submitted: Callable[[], bool], show: Callable[[str], None] | None) -> None:
        self._engine = engine
        self._submitted = submitted
        self._show = show  # a dry run prints its plan line instead of running it
        self._names: set[str] = set()

    def declare(self, name: Any, command: Any, env: Mapping[str, str]) -> None:
        name = opt.name(name, "goal.probe(): name")
        if name in self._names:
            raise ConfigError(f"goal.probe(): a probe named {name!r} was declared already; probe names are unique "
                              "(the run log and the views find a probe's output by its name)")
        if not isinstance(command, (str, list, tuple)):
            raise ConfigError(f"goal.probe(): command must be a str or a list of arguments, not "
                              f"{type(command).__name__} ({command!r})")
        text = opt.command_text(command)
        if self._submitted():
            raise ConfigError(f"goal.probe({name!r}) comes after the first command was submitted: declare probes "
                              "before it, since they run on each machine before its commands")
        self._names.add(name)
        if self._show is not None:
            self._show(f"probe {name}: {text} (once on every machine, before its commands; output kept in the "
                       f"run log; timeout {PROBE_TIMEOUT:g} s)")
            return
        self._engine.call(self._engine.environments.add_probe, Probe(name, text, dict(env)))
