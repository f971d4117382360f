"""What a run records of its machines (SPEC 17): each machine's environment when its first launcher joins,
the config's probes run there before any of its commands, the noise checks of a run that measures, and each
machine's load at the end.

Once per machine, never per command: the first launcher of a machine is asked for its environment (the
``environment`` request: ``_launcher.MachineFacts``, the frequency fields over the CPUs of the machine's core
pools known then), and the run log gets a ``machine`` record; a later runner joining a known machine adds
nothing. While that answer and the machine's probes are awaited the machine is *held* (``Machine.holds``):
its seats take no command, so every record about a machine comes before its first command's, and a probe
never runs beside a command. The launchers of a machine with pools have been moved off them before (see
``_machines``), so a probe runs where the commands without a lease would.

A probe (``goal.probe``) runs on every machine known when it is declared and on every machine that joins
later, once per machine, on one of its launchers. The noise checks (``_noise``) run when the run first
measures, on every machine joined by then -- under ``"strict"`` a finding is a ``ConfigError`` there, before
the measuring commands go -- and on each machine that joins afterwards, whose runners a strict check refuses
(they take no command: they are quarantined with the findings as the reason).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import trio

from .._errors import ConfigError
from .._handles import env_of
from .._version import __version__
from ._noise import NOISE_MODES, findings, refusal, warning
from ._observers import Observers

if TYPE_CHECKING:
    from ._machines import Machine
    from ._seat import Seat
    from ._tree import TaskTree

PROBE_TIMEOUT = 60.0  # seconds a probe may run; then it is killed and recorded with the error
ANSWER_SLACK = 30.0   # seconds beyond a probe's timeout that parallux waits for its launcher's word
LOAD_WAIT = 5.0       # seconds the end of the run waits for a machine's load
ENVIRONMENT_WAIT = 30.0  # seconds a machine's environment may take (a frozen host): then it is recorded unknown
FIELDS = ("hostname", "os", "kernel", "arch", "cpu_model", "microcode", "sockets", "cores_per_socket",
          "threads_per_core", "logical_cpus", "numa_nodes", "memory_bytes", "cpufreq_driver", "governors", "min_khz",
          "max_khz", "turbo", "isolated", "nohz_full", "load", "cpus", "parallux", "python")


@dataclass(frozen=True)
class Probe:
    """``goal.probe(name, command)``: the variables of ``goal.setEnv`` when it was declared come with it."""

    name: str
    command: str
    env: Mapping[str, str] = field(default_factory=dict)


class Record:
    """What is known and done of one machine."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.captured = trio.Event()  # its environment is known (or could not be)
        self.probing = trio.Lock()
        self.probed: set[str] = set()
        self.environment: dict[str, Any] | None = None
        self.refused: str | None = None  # why a strict noise check refuses its runners


class Environments:
    """The machines' records, probes and noise checks of one run (engine thread)."""

    def __init__(self, observers: Observers, tree: TaskTree, schedule: Callable[[], None]) -> None:
        self.enabled = False  # a real run's (not a dry run's, nor the engine's own tests')
        self.mode = "warn"
        self.measuring = False
        self.probes: list[Probe] = []
        self._observers = observers
        self._tree = tree
        self._schedule = schedule
        self._records: dict[Machine, Record] = {}
        self._at_start: set[Record] = set()  # the machines checked when the run began to measure
        self._refusal: str | None = None

    # -- machines ----------------------------------------------------------------------------------------

    def joined(self, machine: Machine, seat: Seat) -> None:
        """A launcher joined its machine: a new machine is held while its environment is read and its probes
        run; a seat joining a machine the strict noise check refused is refused too."""
        if not self.enabled:
            return
        record = self._records.get(machine)
        if record is None:
            record = self._records[machine] = Record(machine)
            self._hold(record, self._first_join, pooled_cpus(machine) or None)
        elif record.refused is not None:
            refuse(seat, record.refused)

    def _hold(self, record: Record, work: Callable[..., Any], *args: Any) -> None:
        record.machine.holds += 1
        self._tree.start_service(self._held, record, work, args)

    async def _held(self, record: Record, work: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            await work(record, *args)
        except Exception as exc:  # what a machine's record lacks must not stop its commands
            self._observers.notice(f"machine {record.machine.label}: not recorded: {type(exc).__name__}: {exc}")
        finally:
            record.captured.set()
            record.machine.holds -= 1
            if not record.machine.holds:
                self._schedule()

    async def _first_join(self, record: Record, cpus: list[int] | None) -> None:
        seat = first_seat(record.machine)
        answer = None
        if seat is not None and seat.client is not None:
            with trio.move_on_after(ENVIRONMENT_WAIT):
                answer = await seat.client.answer({"op": "environment", "cpus": cpus})
        found = answer.get("environment") if answer and answer.get("ev") == "environment" else None
        environment = complete(found if isinstance(found, dict) else {}, seat, cpus)
        record.environment = environment
        self._observers.log(machine_record(record.machine, seat, environment))
        record.captured.set()
        if self.measuring and self.mode != "off" and record not in self._at_start:
            self._check_later(record)
        await self._run_probes(record)

    # -- probes --------------------------------------------------------------------------------------------

    def add_probe(self, probe: Probe) -> None:
        """A probe declared: it runs on every machine known now (held meanwhile), and on each one that joins."""
        self.probes.append(probe)
        for record in list(self._records.values()):
            self._hold(record, self._run_probes)

    async def _run_probes(self, record: Record) -> None:
        await record.captured.wait()  # (the machine's own record first)
        async with record.probing:
            for probe in list(self.probes):
                if probe.name not in record.probed:
                    record.probed.add(probe.name)
                    self._observers.log(await run_probe(record.machine, probe))

    # -- noise -----------------------------------------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        if mode not in NOISE_MODES:
            raise ConfigError(f"setNoiseCheck() mode must be one of {', '.join(NOISE_MODES)}, not {mode!r}")
        self.mode = mode

    async def check_noise(self) -> None:
        """The run measures from now on: check every machine joined so far (waiting for the environments still
        on their way). Under "strict" a finding is a ConfigError, raised before the measuring commands go --
        and again at each later attempt to measure."""
        if self._refusal is not None:
            raise ConfigError(self._refusal)
        if self.measuring or not self.enabled:
            self.measuring = True
            return
        self.measuring = True
        if self.mode == "off":
            return
        self._at_start = set(self._records.values())
        messages: list[str] = []
        for record in list(self._at_start):
            await record.captured.wait()
            messages += self._check(record)
        if messages and self.mode == "strict":
            self._refusal = refusal(messages)
            raise ConfigError(self._refusal)

    def _check(self, record: Record) -> list[str]:
        """Log a machine's findings (one ``noise`` record each), warn of them under "warn"; their messages."""
        machine = record.machine
        found = findings(record.environment, first_siblings(machine), pooled_cpus(machine))
        for finding in found:
            self._observers.log({"event": "noise", "time": time.time(), "machine": machine.label,
                                 "check": finding.check, "message": finding.message(machine.label)})
        if found and self.mode == "warn":
            self._observers.notice(warning(machine.label, found))
        return [finding.message(machine.label) for finding in found]

    def _check_later(self, record: Record) -> None:
        """A machine that joined once the run measured: under "strict" its runners take no command."""
        messages = self._check(record)
        if messages and self.mode == "strict":
            record.refused = ('refused by the strict noise check (goal.setNoiseCheck("strict")): '
                              + "; ".join(messages))
            for seat in record.machine.seats:
                refuse(seat, record.refused)
            self._observers.notice(f"machine {record.machine.label}: {record.refused}; its runners take no "
                                   "command")
            self._schedule()

    # -- the end ---------------------------------------------------------------------------------------------

    async def finish(self, hard: bool) -> None:
        """Each machine's load at the end of the run (``machine_load``), asked of all at once."""
        async with trio.open_nursery() as nursery:
            for record in list(self._records.values()):
                nursery.start_soon(self._log_load, record, hard)

    async def _log_load(self, record: Record, hard: bool) -> None:
        seat = first_seat(record.machine)
        load = None
        if seat is not None and seat.client is not None and not hard:
            with trio.move_on_after(LOAD_WAIT):
                answer = await seat.client.answer({"op": "load"})
                load = answer.get("load") if answer and answer.get("ev") == "load" else None
        self._observers.log({"event": "machine_load", "time": time.time(), "label": record.machine.label,
                             "load": load})


async def run_probe(machine: Machine, probe: Probe) -> dict[str, Any]:
    """Run a probe on one launcher of the machine; its ``probe`` record, whatever happened."""
    seat = first_seat(machine)
    record: dict[str, Any] = {"event": "probe", "time": time.time(), "name": probe.name, "command": probe.command,
                              "machine": machine.label, "runner": runner_name(seat) if seat else None,
                              "returncode": None, "output": "", "truncated": False, "error": None}
    if seat is None or seat.client is None:
        return dict(record, error="no launcher of the machine is connected")
    variables = seat.pipe.variables if seat.pipe is not None else {}
    env = env_of(probe.env, seat.env, {"PARALLUX_RUNNER": seat.name, **variables})
    answer = None
    with trio.move_on_after(PROBE_TIMEOUT + ANSWER_SLACK):
        answer = await seat.client.answer({"op": "probe", "command": probe.command, "env": env,
                                           "timeout": PROBE_TIMEOUT})
    if answer is None or answer.get("ev") != "probe":
        why = (answer or {}).get("message") or seat.client.gone or "its launcher did not answer"
        return dict(record, error=str(why))
    return dict(record, **{key: answer.get(key) for key in ("returncode", "output", "truncated", "error")})


def machine_record(machine: Machine, seat: Seat | None, environment: dict[str, Any]) -> dict[str, Any]:
    identity = (seat.facts.get("machine") if seat is not None else None) or {}
    return {"event": "machine", "time": time.time(), "label": machine.label,
            "runners": [runner_name(seated) for seated in machine.seats],
            "boot_id": identity.get("boot_id"), "machine_id": identity.get("machine_id"),
            "environment": environment}


def complete(environment: dict[str, Any], seat: Seat | None, cpus: list[int] | None) -> dict[str, Any]:
    """Every field, null where the launcher could not say (it went away first); the hostname and Python from
    its hello then, and parallux's version (the launcher is this parallux's)."""
    facts = seat.facts if seat is not None else {}
    known = {"hostname": facts.get("hostname"), "python": facts.get("python"), "cpus": cpus or facts.get("cpus")}
    return {key: environment.get(key, known.get(key)) for key in FIELDS} | {"parallux": __version__}


def runner_name(seat: Seat) -> str:
    """A runner as the machine's records name it: a node of a runner in a batch allocation as ``name@node``."""
    return f"{seat.name}@{seat.host}" if seat.batch is not None else seat.name


def first_seat(machine: Machine) -> Seat | None:
    """A seat of the machine whose launcher is up: the one that probes and is asked."""
    for seat in machine.seats:
        if seat.client is not None and seat.client.gone is None:
            return seat
    return None


def first_siblings(machine: Machine) -> list[list[int]] | None:
    return next((seat.facts["siblings"] for seat in machine.seats if seat.facts.get("siblings")), None)


def pooled_cpus(machine: Machine) -> list[int]:
    """The CPUs the machine's core pools may lease (with whole cores, their siblings too)."""
    pooled: set[int] = set()
    for seat in machine.seats:
        if seat.allocator is not None:
            pooled |= seat.allocator.claims()
    return sorted(pooled)


def refuse(seat: Seat, why: str) -> None:
    seat.quarantined = why
    seat.publish()
