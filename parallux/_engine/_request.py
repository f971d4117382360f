"""What a command's run request carries: its command line, its environment, where it runs, and the options its
completion record keeps.

Built once per command, in the scheduling step that starts it, so it is on the engine's hot path. What
commands registered alike share -- the goal's, the runner's and the command's variables, its workspace and
start directory, the options its record keeps, all held by one ``_spec.Spec`` for all of them -- is sent to
each launcher once, as a template (see "run templates" in ``_launcher``), and a command's request then says
only what is its own: its work path, command line, number and name, and what its lease adds. 725 bytes of
JSON a command become about 130: less to encode here, and less for the launcher to parse.
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
SHARED_RECORDED = tuple(option for option in RECORDED if option.kept == "spec")  # (in the template)
OWN_RECORDED = tuple(option for option in RECORDED  # (the handle's own; name and work_relpath always sent)
                     if option.kept != "spec" and option.name not in ("name", "work_relpath"))
SPECS_KEPT = 64  # merged environments kept per seat (a campaign registers its commands with a few specs)
TEMPLATES_PER_LAUNCHER = 256  # beyond (commands registered each with options of its own), full requests


class Requests:
    """A seat's merged environments per spec, and the run templates its current launcher holds."""

    def __init__(self, seat: Any) -> None:
        self.seat = seat  # (its Seat, which holds it)
        self._envs: dict[Any, dict[str, str]] = {}

    def base_env(self, command: Command) -> dict[str, str]:
        """The spec's (the goal's, then the command's) variables around the runner's, and the runner's name."""
        spec = command._spec
        env = self._envs.get(spec)
        if env is None:
            if len(self._envs) >= SPECS_KEPT:  # (commands unlike each other: none shared, none kept)
                self._envs.clear()
            seat = self.seat
            env = self._envs[spec] = env_of(command.base_env, seat.env, command.env, {"PARALLUX_RUNNER": seat.name})
        return env

    def send(self, run_id: str, command: Command, lease: Lease | None, argv: list[str]) -> tuple[int, Job]:
        """Send the command's run request to the seat's launcher: a templated one where it can."""
        seat = self.seat
        client = seat.client
        assert client is not None
        relpath, work_dir, workspace = command.work_relpath, command.work_dir, seat.workspace
        template = client.templates.get(command._spec)
        if template is None and len(client.templates) < TEMPLATES_PER_LAUNCHER:
            template = self._define(run_id, command)
        if template is None or work_dir != ("" if workspace == "/" else workspace) + "/" + relpath:
            return self._send_whole(run_id, command, lease, argv)
        request: dict[str, Any] = {"op": "run", "tpl": template, "relpath": relpath,
                                   "text": command.command_text, "seq": command.seq, "attempt": command.attempt,
                                   "name": command.name}
        if lease is not None and lease.core_lease is not None:  # (else: sh -c text)
            request["argv"] = argv
        env_add = self._own_variables(command, lease)
        if env_add:
            request["env_add"] = env_add
        record_add = own_record(command)
        if record_add:
            request["record_add"] = record_add
        cpus = lease_cpus(lease, seat)
        if cpus is not None:
            request["cpus"] = cpus
        return client.ask(request, own=True)

    def _shared_env(self, command: Command) -> dict[str, str]:
        """A copy of the variables its spec's commands share there: its base ones and its launcher's pipe's."""
        env = dict(self.base_env(command))
        pipe = self.seat.pipe
        if pipe is not None and pipe.variables:
            env.update(pipe.variables)
        return env

    def _define(self, run_id: str, command: Command) -> int:
        """Send the launcher what the commands of this spec share; its template number."""
        seat = self.seat
        client = seat.client
        env = self._shared_env(command)
        record = {option.name: getattr(command, option.field) for option in SHARED_RECORDED}
        record.update({option.name: None for option in OWN_RECORDED}, runner=seat.name, host=seat.host,
                      run_id=run_id)  # (the launcher adds a command's lease: see RunTemplates)
        run = {"env": env, "workspace": seat.workspace, "cwd": command.cwd, "quiet_start": True,
               "mark": mark_prefix(run_id, seat), "record": record}
        if command.metrics:
            run["metrics"] = command.metrics
        if command.memory is not None:
            run["memory"] = command.memory
        template = client.templates[command._spec] = len(client.templates) + 1
        client.post({"op": "template", "tpl": template, "run": run})
        return template

    def _own_variables(self, command: Command, lease: Lease | None) -> dict[str, str]:
        variables: dict[str, str] = {}
        if command.repetition is not None:  # an execution of a benchmark: "w1", "r3"
            variables["PARALLUX_REPETITION"] = command.repetition
        if lease is not None:
            variables.update(lease.variables())
        return variables

    def _send_whole(self, run_id: str, command: Command, lease: Lease | None, argv: list[str]) -> tuple[int, Job]:
        """The full request: everything it runs with, in it."""
        seat = self.seat
        assert seat.client is not None
        work_dir = command.work_dir
        env = self._shared_env(command)
        env["PARALLUX_WORK_RELPATH"] = command.work_relpath
        env["PARALLUX_WORK_DIR"] = work_dir
        env["PARALLUX_METRICS"] = f"{work_dir}/{METRICS_NAME}"
        env.update(self._own_variables(command, lease))
        record = dict(zip(RECORDED_NAMES, recorded_of(command)))
        record.update(runner=seat.name, host=seat.host, cores=list(command.cores), numa_node=command.numa_node,
                      gpus=list(command.gpus), run_id=run_id, attempt=command.attempt,
                      attempts_before=command.attempts or [])
        return seat.client.run(
            argv=argv, env=env, work_dir=work_dir, workspace=seat.workspace, cwd=command.cwd,
            command_text=command.command_text, mark=f"{mark_prefix(run_id, seat)}{command.seq}.{command.attempt}",
            memory=command.memory, record=record, metrics=command.metrics, cpus=lease_cpus(lease, seat))


def mark_prefix(run_id: str, seat: Any) -> str:
    """The start of its commands' marks (``<run id>@<seat>.``; then ``<seq>.<attempt>``)."""
    return f"{run_id}@{seat.mark_scope}."


def lease_cpus(lease: Lease | None, seat: Any) -> list[int] | None:
    """The CPUs a command is spawned on: its lease's, where the seat's launcher was moved off them."""
    return list(lease.cores) if lease is not None and lease.cores and seat.home_cpus is not None else None


def own_record(command: Command) -> dict[str, Any]:
    """What a command's record says that its template's does not (its lease, earlier attempts, inputs)."""
    record: dict[str, Any] = {}
    if command.cores:
        record["cores"] = list(command.cores)
    if command.numa_node is not None:
        record["numa_node"] = command.numa_node
    if command.gpus:
        record["gpus"] = list(command.gpus)
    if command.attempts:
        record["attempts_before"] = command.attempts
    for option in OWN_RECORDED:
        value = getattr(command, option.field)
        if value is not None:
            record[option.name] = value
    return record
