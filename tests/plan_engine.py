"""The real engine and Goal over plan launchers (an in-process launcher answering each command) on Trio's
autojumping virtual clock: the double the unit tests drive the engine with.
"""

from __future__ import annotations

from typing import Any

from trio.testing import MockClock

from parallux._engine import Engine
from parallux._goal import Goal
from parallux._transports._plan import PlanTransport

FACTS = {"logical_cores": 8, "home": "/home/u", "cwd": "/home/u", "numactl": "numactl", "cpus": list(range(8)),
         "hostname": "planned"}


def ok_in(seconds: float) -> Any:
    return lambda request: (seconds, "ok", 0)


class Run:
    """An engine thread on a virtual clock and a Goal over plan launchers answering ``outcome``."""

    def __init__(self, outcome: Any, resume: bool = False, facts: dict[str, Any] = FACTS) -> None:
        self.engine = Engine("test-run", clock=MockClock(autojump_threshold=0.001))
        self.engine.start()
        self.transports: list[PlanTransport] = []
        self.goal = Goal(self.engine, run_id="test-run", resume=resume, transport_for=self._plan)
        self._outcome, self._facts = outcome, facts

    def _plan(self, real: Any) -> PlanTransport:
        self.transports.append(PlanTransport(real, facts=dict(self._facts), outcome=self._outcome))
        return self.transports[-1]

    def close(self) -> None:
        self.engine.cancel()
        self.engine.shutdown()
        assert self.engine.join(timeout=10)
