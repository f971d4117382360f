"""The scheduler with test-double runners, on Trio's virtual clock: fairness, limits, no deadlock."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
import trio

from parallux._allocator import ResourceAllocator
from parallux._cores import CoreAllocator, parse_core_layout
from parallux._cpus import MachineCpus
from parallux._handles import Command, Completion
from parallux._errors import SchedulerPolicyError
from parallux._resources import Lease, Offer, request_of
from parallux._scheduler import Scheduler


class FakeRunner:
    """The scheduler's ``Place``: slots, an optional core allocator, GPUs and memory, liveness."""

    def __init__(self, name: str, max_jobs: int, cores: Any = None, nodes: Any = None, gpus: tuple[int, ...] = (),
                 memory: int | None = None) -> None:
        self.name = name
        self.slots = trio.CapacityLimiter(max_jobs)
        layout = parse_core_layout(cores, nodes)
        self.allocator = CoreAllocator(layout) if layout else None
        self.resources = ResourceAllocator(self.allocator, Offer(gpus=gpus, memory=memory))
        self.resources.machine.memory = memory
        self.alive = True
        self.quarantined = None
        self.running = 0
        self.peak = 0
        self.peak_cores = 0

    @property
    def accepting(self) -> bool:
        return self.alive and self.quarantined is None

    @property
    def handle(self) -> FakeRunner:  # what a setScheduler function is offered
        return self

    def can_take_now(self, command: Command) -> bool:
        if not self.accepting or self.slots.available_tokens < 1:
            return False
        return not self.resources.needs(command) or self.resources.could_fit_now(request_of(command))

    def lease_for(self, command: Command) -> Lease | None:
        if not self.resources.needs(command):
            return None
        return self.resources.try_lease(request_of(command))

    def describe(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<FakeRunner {self.name}>"


_completion = Completion()


def command(seq: int, candidates: tuple[FakeRunner, ...], threads: int = 1, numa_node: int | None = None,
            cores: tuple[int, ...] | None = None, pin: FakeRunner | None = None, duration: float = 1.0,
            gpus: int | tuple[int, ...] | None = None, memory: int | None = None) -> Command:
    handle = Command(_completion, command="true", command_text="true", seq=seq, name=f"c{seq}", threads=threads,
                     requested_gpus=gpus, memory=memory,
                     numa_node=numa_node, requested_numa_node=numa_node, requested_cores=cores, env={}, cwd=None, work_relpath=f"w/{seq}",
                     check=True, timeout=duration, retries=0, pin=pin, candidates=candidates, base_env={})
    return handle


class Simulation:
    """A miniature engine: started commands 'run' for their timeout field in virtual time."""

    def __init__(self, global_limit: float = math.inf, bypass_limit: int = 16) -> None:
        self.global_slots = trio.CapacityLimiter(global_limit)
        self.scheduler = Scheduler(self.global_slots, self._start, bypass_limit=bypass_limit)
        self.started: list[tuple[float, Command, FakeRunner]] = []
        self.running = 0
        self.peak = 0
        self.nursery: trio.Nursery | None = None

    def _start(self, cmd: Command, runner: FakeRunner, lease: Lease | None) -> None:
        self.global_slots.acquire_on_behalf_of_nowait(cmd)
        runner.slots.acquire_on_behalf_of_nowait(cmd)
        self.running += 1
        runner.running += 1
        self.peak = max(self.peak, self.running)
        runner.peak = max(runner.peak, runner.running)
        if runner.allocator is not None:
            in_use = len(runner.allocator.configured()) - len(runner.allocator.available())
            runner.peak_cores = max(runner.peak_cores, in_use)
        cmd.cores = lease.cores if lease else ()
        self.started.append((trio.current_time(), cmd, runner))
        assert self.nursery is not None
        self.nursery.start_soon(self._run, cmd, runner, lease)

    async def _run(self, cmd: Command, runner: FakeRunner, lease: Lease | None) -> None:
        await trio.sleep(cmd.timeout)
        if lease is not None:
            runner.resources.release(lease)
        self.global_slots.release_on_behalf_of(cmd)
        runner.slots.release_on_behalf_of(cmd)
        self.running -= 1
        runner.running -= 1
        self.scheduler.schedule()

    async def run(self, commands: list[Command]) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            self.scheduler.submit(commands)
            assert self.scheduler.schedule() == []
        assert self.scheduler.queued == 0

    def order(self) -> list[str]:
        return [c.name for _, c, _ in self.started]

    def start_time(self, name: str) -> float:
        return next(t for t, c, _ in self.started if c.name == name)


async def test_Scheduler_starts_commands_in_submission_order(autojump_clock: Any) -> None:
    runner = FakeRunner("a", 2)
    sim = Simulation()
    await sim.run([command(i, (runner,)) for i in range(1, 7)])
    assert sim.order() == [f"c{i}" for i in range(1, 7)]
    assert runner.peak == 2


async def test_Scheduler_never_exceeds_the_global_limit(autojump_clock: Any) -> None:
    a, b = FakeRunner("a", 3), FakeRunner("b", 3)
    sim = Simulation(global_limit=4)
    await sim.run([command(i, (a, b)) for i in range(1, 21)])
    assert sim.peak == 4 and a.peak == 3 and b.peak == 1


async def test_Scheduler_pinned_command_on_a_busy_runner_does_not_block_later_ones(autojump_clock: Any) -> None:
    a, b = FakeRunner("a", 1), FakeRunner("b", 1)
    sim = Simulation()
    commands = [command(1, (a,), pin=a, duration=10), command(2, (a,), pin=a), command(3, (a, b)),
                command(4, (a, b))]
    await sim.run(commands)
    assert sim.start_time("c3") == 0 and sim.start_time("c4") == 1  # on b, while c2 waits for a
    assert sim.start_time("c2") == 10


async def test_Scheduler_big_lease_waiting_does_not_block_small_ones_that_fit(autojump_clock: Any) -> None:
    r = FakeRunner("r", 8, cores=range(4))
    sim = Simulation()
    commands = [command(1, (r,), duration=5), command(2, (r,), threads=4), command(3, (r,)), command(4, (r,))]
    await sim.run(commands)
    assert sim.start_time("c3") == 0 and sim.start_time("c4") == 0
    assert sim.start_time("c2") == 5
    assert r.peak_cores == 4


async def test_Scheduler_big_lease_is_not_starved_by_a_stream_of_small_ones(autojump_clock: Any) -> None:
    r = FakeRunner("r", 8, cores=range(4))
    sim = Simulation(bypass_limit=5)
    # One-core commands of staggered lengths keep at least one core busy at every instant.
    commands = [command(1, (r,), duration=1.5), command(2, (r,), threads=4)]
    commands += [command(i, (r,), duration=1 + (i % 3) * 0.5) for i in range(3, 200)]
    await sim.run(commands)
    big = sim.start_time("c2")
    started_before = [c for t, c, _ in sim.started if t < big]
    assert len(started_before) <= 1 + 5 + 4  # the first, the bounded bypasses, and the pass it reserved in
    assert big < 10


async def test_Scheduler_exact_cores_and_numa_nodes_are_respected(autojump_clock: Any) -> None:
    r = FakeRunner("r", 8, nodes={0: [0, 1], 1: [2, 3]})
    sim = Simulation()
    commands = [command(1, (r,), cores=(3,), duration=2), command(2, (r,), cores=(3,)),
                command(3, (r,), numa_node=0, threads=2), command(4, (r,), numa_node=1)]
    await sim.run(commands)
    leases = {c.name: c.cores for _, c, _ in sim.started}
    assert leases == {"c1": (3,), "c2": (3,), "c3": (0, 1), "c4": (2,)}
    assert sim.start_time("c2") == 2 and sim.start_time("c4") == 0


async def test_Scheduler_policy_chooses_or_waits(autojump_clock: Any) -> None:
    a, b = FakeRunner("a", 2), FakeRunner("b", 2)
    offered: list[tuple[list[str], int]] = []

    def only_b(runners: list[FakeRunner], threads: int) -> FakeRunner | None:
        offered.append(([r.name for r in runners], threads))
        return next((r for r in runners if r.name == "b"), None)

    sim = Simulation()
    sim.scheduler.policy = only_b  # type: ignore[assignment]
    await sim.run([command(i, (a, b), threads=3) for i in range(1, 6)])
    assert {r.name for _, _, r in sim.started} == {"b"}
    assert offered[0] == (["a", "b"], 3) and (["a"], 3) in offered  # None while only a was free: it waited


async def test_Scheduler_policy_returning_a_stranger_is_an_error(autojump_clock: Any) -> None:
    a = FakeRunner("a", 1)
    sim = Simulation()
    sim.scheduler.policy = lambda runners, threads: "elsewhere"  # type: ignore[assignment]
    sim.scheduler.submit([command(1, (a,))])
    with pytest.raises(SchedulerPolicyError, match="elsewhere"):
        sim.scheduler.schedule()


async def test_Scheduler_reports_commands_whose_runners_are_all_gone(autojump_clock: Any) -> None:
    a, b = FakeRunner("a", 1), FakeRunner("b", 1)
    a.alive = False
    sim = Simulation()
    sim.scheduler.submit([command(1, (a,), pin=a), command(2, (a, b)), command(3, (a,), pin=a)])
    sim.nursery = None
    lost = []
    started = []
    sim.scheduler.start = lambda c, r, lease: started.append(c.name)  # type: ignore[assignment]
    lost = sim.scheduler.schedule()
    assert [c.name for c in lost] == ["c1", "c3"] and started == ["c2"]


@pytest.mark.parametrize("seed", range(8))
async def test_Scheduler_random_mixes_finish_without_deadlock(autojump_clock: Any, seed: int) -> None:
    rng = random.Random(seed)
    runners = [FakeRunner("p", rng.randint(1, 4), nodes={0: [0, 1], 1: [2, 3]}),
               FakeRunner("q", rng.randint(1, 4), cores=range(3)),
               FakeRunner("plain", rng.randint(1, 3))]
    pool = tuple(runners)
    commands = []
    for seq in range(1, 120):
        kind = rng.random()
        duration = rng.choice([0.5, 1, 2, 3])
        if kind < 0.2:
            runner = rng.choice(runners[:2])
            commands.append(command(seq, (runner,), pin=runner, threads=2, duration=duration))
        elif kind < 0.3:
            commands.append(command(seq, (runners[0],), pin=runners[0], cores=(rng.choice([0, 3]),),
                                    duration=duration))
        elif kind < 0.4:
            commands.append(command(seq, (runners[0],), pin=runners[0], numa_node=rng.choice([0, 1]),
                                    duration=duration))
        else:
            commands.append(command(seq, pool, threads=rng.choice([1, 1, 2]), duration=duration))
    sim = Simulation(global_limit=rng.choice([3, 5, math.inf]))
    with trio.fail_after(10_000):
        await sim.run(commands)
    assert len(sim.started) == len(commands)
    for runner in runners:
        assert runner.peak <= runner.slots.total_tokens
        if runner.allocator is not None:
            assert runner.allocator.available() == runner.allocator.configured()
    assert sim.peak <= sim.global_slots.total_tokens


async def test_Scheduler_a_reservation_holds_the_cores_on_every_runner_of_the_machine(autojump_clock: Any) -> None:
    """A wide command waiting on one runner is not starved by narrow ones on another runner of its machine, which
    lease the same CPUs; a runner of that machine whose pool does not meet its own is not held back."""
    wide, narrow, apart = FakeRunner("wide", 8, cores=range(4)), FakeRunner("narrow", 8, cores=range(4)), \
        FakeRunner("apart", 8, cores=[4, 5])
    machine = MachineCpus()
    for runner in (wide, narrow, apart):
        runner.resources.attach(machine)
    sim = Simulation(bypass_limit=5)
    commands = [command(1, (narrow,), pin=narrow, duration=1.5), command(2, (wide,), pin=wide, threads=4)]
    commands += [command(i, (narrow,), pin=narrow, duration=1 + (i % 3) * 0.5) for i in range(3, 200)]
    commands += [command(i, (apart,), pin=apart, duration=1) for i in range(200, 230)]
    await sim.run(commands)
    big = sim.start_time("c2")
    assert len([c for t, c, r in sim.started if t < big and r is narrow]) <= 1 + 5 + 4
    assert big < 10
    assert [t for t, _, r in sim.started if r is apart][:10] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # never held


@pytest.mark.parametrize("wide, narrow", [({"gpus": 4}, {"gpus": 1}), ({"memory": 4}, {"memory": 1}),
                                          ({"gpus": (0, 1, 2, 3)}, {"gpus": 1})])
async def test_Scheduler_a_wide_gpu_or_memory_request_is_not_starved(autojump_clock: Any, wide: dict[str, Any],
                                                                     narrow: dict[str, Any]) -> None:
    """Four GPUs (or 4 bytes of memory), one taken by each of a stream of narrow commands of staggered lengths,
    so that one is always busy: the wide command that needs all four still starts, after a bounded number of
    bypasses; on a runner without a core pool, whose slots are never reserved."""
    r = FakeRunner("r", 8, gpus=(0, 1, 2, 3), memory=4)
    sim = Simulation(bypass_limit=5)
    commands = [command(1, (r,), duration=1.5, **narrow), command(2, (r,), **wide)]
    commands += [command(i, (r,), duration=1 + (i % 3) * 0.5, **narrow) for i in range(3, 200)]
    await sim.run(commands)
    big = sim.start_time("c2")
    assert len([c for t, c, _ in sim.started if t < big]) <= 1 + 5 + 4
    assert big < 10
    assert r.resources.available_gpus() == [0, 1, 2, 3] and r.resources.machine.reserved == 0


async def test_Scheduler_gpu_leases_on_two_runners_of_one_machine_never_meet(autojump_clock: Any) -> None:
    a, b = FakeRunner("a", 8, gpus=(0, 1)), FakeRunner("b", 8, gpus=(0, 1))
    machine = MachineCpus()
    a.resources.attach(machine)
    b.resources.attach(machine)
    sim = Simulation()
    await sim.run([command(i, (a, b), gpus=1) for i in range(1, 9)])
    assert [t for t, _, _ in sim.started] == [0, 0, 1, 1, 2, 2, 3, 3]
