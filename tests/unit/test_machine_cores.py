"""Core allocators of runners on one machine: one set of leased CPUs for them all (``_cores.MachineCpus``), and
``whole_cores=True`` leases of physical cores, read from a fake machine's topology (``_launcher.MachineFacts``)."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from parallux._cores import CoreAllocator, MachineCpus, parse_core_layout
from parallux._errors import ConfigError
from parallux._launcher import MachineFacts
from tests.machine_tree import fake_machine


def allocator(pool: object, nodes: object = None, *, whole_cores: bool = False) -> CoreAllocator:
    layout = parse_core_layout(pool, nodes)
    assert layout is not None
    return CoreAllocator(layout, whole_cores=whole_cores)


def on_one_machine(*allocators: CoreAllocator, siblings: list[list[int]] | None = None) -> MachineCpus:
    machine = MachineCpus()
    for each in allocators:
        each.attach(machine, siblings)
    return machine


@pytest.fixture
def four_cpus_two_cores(tmp_path: Path) -> list[list[int]]:
    """The SMT siblings of a fake 4-CPU machine (two cores of two threads), as its launcher reads them."""
    facts = MachineFacts(str(fake_machine(tmp_path, [[0, 1], [2, 3]])))
    return facts.siblings(facts.online())


# --- one machine, several runners ----------------------------------------------------------------------------


def test_machine_cores_a_cpu_goes_to_one_lease_whatever_the_runner() -> None:
    local, server = allocator([0, 1]), allocator([1, 2])
    on_one_machine(local, server)
    first = server.try_lease(1)
    assert first is not None and first.cores == (1,)
    assert local.available() == [0]
    assert local.try_lease(2) is None and not local.could_fit_now(2)  # CPU 1 is the other runner's now
    second = local.try_lease(1)
    assert second is not None and second.cores == (0,)
    assert local.try_lease(1) is None
    server.release(first)
    assert local.available() == [1] and server.available() == [1, 2]
    assert local.try_lease(1, cores=[1]) is not None


def test_machine_cores_each_runner_leases_only_from_its_own_pool() -> None:
    local, server = allocator([0]), allocator([0, 1, 2, 3])
    on_one_machine(local, server)
    taken = [server.try_lease(1) for _ in range(4)]
    assert sorted(lease.cores[0] for lease in taken if lease) == [0, 1, 2, 3]
    assert local.try_lease(1) is None
    server.release(taken[0])  # CPU 0
    assert local.try_lease(1) is not None


def test_machine_cores_runners_on_other_machines_do_not_share() -> None:
    local, server = allocator([0, 1]), allocator([0, 1])
    on_one_machine(local)
    on_one_machine(server)
    assert local.try_lease(2) is not None and server.try_lease(2) is not None


def test_machine_cores_a_lease_goes_back_to_the_machine_it_came_from() -> None:
    runner = allocator([0, 1])
    old = on_one_machine(runner)
    lease = runner.try_lease(2)
    assert lease is not None
    new = on_one_machine(runner)  # its launcher came back on another machine (a new Slurm allocation)
    assert runner.available() == [0, 1]
    runner.release(lease)
    assert not old.taken and not new.taken


def test_machine_cores_concurrent_leases_never_share_a_cpu() -> None:
    runners = [allocator(range(0, 6)), allocator(range(2, 8)), allocator([1, 3, 5, 7])]
    machine = on_one_machine(*runners)
    held: dict[int, object] = {}
    lock = threading.Lock()
    errors: list[str] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(300):
            runner = rng.choice(runners)
            lease = runner.try_lease(rng.randint(1, 3))
            if lease is None:
                continue
            with lock:
                for cpu in lease.cores:
                    if cpu in held:
                        errors.append(f"CPU {cpu} leased twice")
                    held[cpu] = lease
            with lock:
                for cpu in lease.cores:
                    del held[cpu]
            runner.release(lease)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and not machine.taken


# --- whole cores ----------------------------------------------------------------------------------------------


def test_whole_cores_a_lease_binds_one_thread_per_core_and_holds_the_siblings(
        four_cpus_two_cores: list[list[int]]) -> None:
    runner = allocator(range(4), whole_cores=True)
    on_one_machine(runner, siblings=four_cpus_two_cores)
    first = runner.try_lease(1)
    assert first is not None and first.cores == (0,) and first.held == (0, 1)
    assert runner.available() == [2, 3]
    second = runner.try_lease(1)
    assert second is not None and second.cores == (2,) and second.held == (2, 3)
    assert runner.try_lease(1) is None  # CPUs 1 and 3 are idle siblings, never leased
    runner.release(first)
    runner.release(second)
    both = runner.try_lease(2)
    assert both is not None and both.cores == (0, 2) and both.held == (0, 1, 2, 3)


def test_whole_cores_no_other_runner_gets_the_siblings(four_cpus_two_cores: list[list[int]]) -> None:
    whole, plain = allocator(range(4), whole_cores=True), allocator([1, 3])
    on_one_machine(whole, plain, siblings=four_cpus_two_cores)
    lease = whole.try_lease(1)
    assert lease is not None and lease.cores == (0,)
    sibling = plain.try_lease(1)
    assert sibling is not None and sibling.cores == (3,)  # not 1, CPU 0's sibling
    assert plain.try_lease(1) is None
    assert whole.try_lease(1) is None  # core 2-3 has a thread in use
    plain.release(sibling)
    assert whole.try_lease(1) is not None


def test_whole_cores_limits_count_physical_cores(four_cpus_two_cores: list[list[int]]) -> None:
    runner = allocator(range(4), {0: [0, 1], 1: [2, 3]}, whole_cores=True)
    on_one_machine(runner, siblings=four_cpus_two_cores)
    with pytest.raises(ConfigError, match=r"threads=3 is more than the 2 physical cores of the pool \(whole_cores"):
        runner.check_request(3, None, None)
    with pytest.raises(ConfigError, match="threads=2 is more than the 1 physical core of numa node 0"):
        runner.check_request(2, 0, None)
    lease = runner.try_lease(1, numa_node=1)
    assert lease is not None and lease.cores == (2,) and lease.held == (2, 3)


def test_whole_cores_exact_cores_hold_their_siblings(four_cpus_two_cores: list[list[int]]) -> None:
    runner = allocator(range(4), whole_cores=True)
    on_one_machine(runner, siblings=four_cpus_two_cores)
    lease = runner.try_lease(1, cores=[1])
    assert lease is not None and lease.cores == (1,) and lease.held == (0, 1)
    assert runner.try_lease(1, cores=[0]) is None
    with pytest.raises(ConfigError, match="cores 0 and 1 are SMT siblings of one core"):
        runner.check_request(2, None, [0, 1])


def test_whole_cores_a_pool_holding_one_thread_of_a_core_still_keeps_its_sibling_idle(
        four_cpus_two_cores: list[list[int]]) -> None:
    whole, plain = allocator([0, 2], whole_cores=True), allocator([1])
    on_one_machine(whole, plain, siblings=four_cpus_two_cores)
    assert whole.claims() == {0, 1, 2, 3}
    lease = whole.try_lease(1)
    assert lease is not None and lease.held == (0, 1)
    assert plain.try_lease(1) is None


def test_whole_cores_without_smt_a_core_is_a_cpu() -> None:
    runner = allocator(range(2), whole_cores=True)
    on_one_machine(runner, siblings=[[0], [1]])
    lease = runner.try_lease(2)
    assert lease is not None and lease.cores == lease.held == (0, 1)
