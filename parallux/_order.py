"""The order a group's benchmark executions are queued in (SPEC 16, ``goal.setOrder()``).

A machine drifts (it warms up, another job starts, the CPU's clock changes): executions run back to back
would lend the drift to one benchmark. Interleaved, round by round -- warm-ups first, then round 1 =
repetition 1 of every benchmark in submission order, round 2, ... -- it spreads over all of them. "shuffle"
puts each round in a random order besides (a seed, given or drawn, makes it reproducible); "grouped" queues
each benchmark's executions back to back. The scheduler starts the queue in this order as slots free up:
there is no barrier between rounds.
"""

from __future__ import annotations

import random
import secrets
import time
from typing import Any, Sequence

from . import _options as opt
from ._errors import ConfigError
from ._handles import Command

SEED_BITS = 32  # a drawn seed: short enough to copy from the summary into setOrder(seed=)


class Order:
    """The run's order, as ``setOrder()`` last set it; applies to the groups issued after the call."""

    def __init__(self) -> None:
        self.mode = "interleave"
        self.seed: int | None = None
        self._random: random.Random | None = None
        self._logged = False  # the run log has this order's record

    def set(self, mode: object, seed: object) -> None:
        if mode not in opt.ORDER_MODES:
            raise ConfigError(f"setOrder() mode must be one of {', '.join(opt.ORDER_MODES)}, not {mode!r}")
        if seed is not None:
            opt.positive_int(seed, "setOrder() seed", minimum=0)
            if mode != "shuffle":
                raise ConfigError(f"setOrder() seed= only applies to \"shuffle\", not to {mode!r}")
        self.mode = str(mode)
        self.seed = (seed if seed is not None else secrets.randbits(SEED_BITS)) if mode == "shuffle" else None
        self._random = random.Random(self.seed) if mode == "shuffle" else None
        self._logged = False

    def record(self) -> dict[str, Any] | None:
        """The run log's ``order`` event, the first time a group with benchmarks goes under this order."""
        if self._logged:
            return None
        self._logged = True
        return {"event": "order", "time": time.time(), "mode": self.mode, "seed": self.seed}

    def describe(self) -> str:
        """For the summary: the mode, and the seed that repeats a shuffle."""
        if self.mode != "shuffle":
            return f"order {self.mode}"
        return f"order shuffle, seed {self.seed} (goal.setOrder(\"shuffle\", seed={self.seed}) repeats it)"

    def arrange(self, handles: Sequence[Any]) -> list[Command]:
        """The commands to queue for these handles: each benchmark's executions in this order's place, a
        plain command in the first round (nothing to measure: no reason to make it wait)."""
        if self.mode == "grouped":
            return [command for handle in handles for command in executions_of(handle)]
        warmup_rounds = max((getattr(h, "warmup", 0) for h in handles), default=0)
        rounds: list[list[Command]] = [[] for _ in range(warmup_rounds + max(
            (getattr(h, "repeat", 1) for h in handles), default=1))]
        for handle in handles:
            executions = executions_of(handle)
            if executions[0].bench is None:
                rounds[0].append(executions[0])
                continue
            for index, execution in enumerate(executions):  # w1..wK in rounds 0..K-1, r1.. from warmup_rounds
                rounds[index if index < handle.warmup else warmup_rounds + index - handle.warmup].append(execution)
        if self._random is not None:
            for round_ in rounds:
                self._random.shuffle(round_)
        return [command for round_ in rounds for command in round_]


def executions_of(handle: Any) -> list[Command]:
    """What the engine runs for a handle: a benchmark's executions, or the command itself."""
    return getattr(handle, "executions", None) or [handle]
