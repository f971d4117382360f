"""What a command's run request carries: its command line, its environment, where it runs, and the options its
completion record keeps.

Built once per command, in the scheduling step that starts it, so it is on the engine's hot path. What
commands registered alike share -- the goal's, the runner's and the command's variables, which one
``_spec.Spec`` holds for all of them -- is merged once per spec and seat (``Seat.requests``), and a
command's request adds only its own: its work dir, its lease, its record.
"""

from __future__ import annotations

import operator
from typing import Any

from .._command_options import COMMAND
from .._handles import Command, env_of
from .._launcher import METRICS_NAME
from .._protocol import Job
from .._resources import Lease

RECORDED = COMMAND.flagged("record")  # a command's options its result.json keeps (--resume reads them back)
RECORDED_NAMES = tuple(option.name for option in RECORDED)
recorded_of = operator.attrgetter(*(option.field for option in RECORDED))
SPECS_KEPT = 64  # merged environments kept per seat (a campaign registers its commands with a few specs)


class Requests:
    """A seat's merged environments, per spec: the spec's (the goal's, then the command's) variables around
    the runner's, and the runner's name."""

    def __init__(self, seat: Any) -> None:
        self.seat = seat  # (its Seat, which holds it)
        self._envs: dict[Any, dict[str, str]] = {}

    def base_env(self, command: Command) -> dict[str, str]:
        spec = command._spec
        env = self._envs.get(spec)
        if env is None:
            if len(self._envs) >= SPECS_KEPT:  # (commands unlike each other: none shared, none kept)
                self._envs.clear()
            seat = self.seat
            env = self._envs[spec] = env_of(command.base_env, seat.env, command.env, {"PARALLUX_RUNNER": seat.name})
        return env

    def send(self, run_id: str, command: Command, lease: Lease | None, argv: list[str]) -> tuple[int, Job]:
        """Send the command's run request to the seat's launcher."""
        seat = self.seat
        assert seat.client is not None
        work_dir = command.work_dir
        env = dict(self.base_env(command))
        env["PARALLUX_WORK_RELPATH"] = command.work_relpath
        env["PARALLUX_WORK_DIR"] = work_dir
        env["PARALLUX_METRICS"] = f"{work_dir}/{METRICS_NAME}"
        if seat.pipe is not None and seat.pipe.variables:
            env.update(seat.pipe.variables)
        if command.repetition is not None:  # an execution of a benchmark: "w1", "r3"
            env["PARALLUX_REPETITION"] = command.repetition
        if lease is not None:
            env.update(lease.variables())
        record = dict(zip(RECORDED_NAMES, recorded_of(command)))
        record.update(runner=seat.name, host=seat.host, cores=list(command.cores), numa_node=command.numa_node,
                      gpus=list(command.gpus), run_id=run_id, attempt=command.attempt,
                      attempts_before=command.attempts or [])
        return seat.client.run(
            argv=argv, env=env, work_dir=work_dir, workspace=seat.workspace, cwd=command.cwd,
            command_text=command.command_text, mark=f"{run_id}@{seat.mark_scope}.{command.seq}.{command.attempt}",
            memory=command.memory, record=record, metrics=command.metrics,
            cpus=list(lease.cores) if lease is not None and lease.cores and seat.home_cpus is not None else None)
