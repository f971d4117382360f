"""The resource allocator (``_allocator.ResourceAllocator``): cores, GPUs and memory leased together, all or
nothing, under one machine's lock; GPUs by count or index, cores from a GPU's NUMA node, memory admitted
against the machine's pool, several runners of one machine sharing all three."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from parallux._allocator import ResourceAllocator, machine_memory
from parallux._cores import CoreAllocator, parse_core_layout
from parallux._cpus import MachineCpus
from parallux._errors import ConfigError
from parallux._gpus import choices, gpu_offer, gpu_request, gpu_variables
from parallux._resources import Lease, Offer, Request, offer_of

GIB = 1 << 30
# the acceptance tests' machine: 4 GPUs, two on each of NUMA nodes 0 and 1
FOUR = Offer(gpus=(0, 1, 2, 3), gpu_nodes={0: 0, 1: 0, 2: 1, 3: 1}, node_cpus={0: (0, 1), 1: (2, 3)})


def runner(pool: object = None, nodes: object = None, offer: Offer = FOUR) -> ResourceAllocator:
    layout = parse_core_layout(pool, nodes)
    return ResourceAllocator(CoreAllocator(layout) if layout is not None else None, offer)


def machine(*allocators: ResourceAllocator, memory: int | None = None) -> MachineCpus:
    shared = MachineCpus()
    shared.memory = memory
    for allocator in allocators:
        allocator.attach(shared)
    return shared


def lease(allocator: ResourceAllocator, **request: object) -> Lease:
    got = allocator.try_lease(Request(**request))  # type: ignore[arg-type]
    assert got is not None, request
    return got


# --- options --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [(None, None), (0, None), ([], None), (2, 2), ([3, 1], (1, 3)),
                                             (range(2), (0, 1))])
def test_gpu_request_counts_and_indices(value: object, expected: object) -> None:
    assert gpu_request(value) == expected


@pytest.mark.parametrize("value, message", [(True, "an integer"), (-1, "must not be negative"), ("1", "an integer"),
                                            ([0, 0], "more than once"), ([1.5], "an integer")])
def test_gpu_request_refuses_nonsense(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        gpu_request(value)


def test_gpu_offer_none_detects_a_list_is_the_pool() -> None:
    assert gpu_offer(None) is None and gpu_offer([]) == () and gpu_offer([2, 0]) == (0, 2)
    with pytest.raises(ConfigError, match="a runner's gpus must be None"):
        gpu_offer(4)


def test_gpu_variables_name_every_runtime() -> None:
    assert gpu_variables((1, 3)) == {"CUDA_VISIBLE_DEVICES": "1,3", "HIP_VISIBLE_DEVICES": "1,3",
                                     "ROCR_VISIBLE_DEVICES": "1,3", "PARALLUX_GPUS": "1,3",
                                     "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def test_offer_of_a_hello() -> None:
    facts = {"gpus": [{"index": 1, "numa_node": 1}, {"index": 0, "numa_node": None}],
             "memory_total": 10 * GIB, "numa_cpus": {"0": [0], "1": [1]}}
    offer = offer_of(facts, None, None)
    assert offer.gpus == (0, 1) and offer.gpu_nodes == {1: 1} and offer.node_cpus == {0: (0,), 1: (1,)}
    assert offer.memory == 9 * GIB and not offer.memory_given
    assert offer_of(facts, None, GIB).memory == GIB
    assert offer_of({}, (2, 3), None).gpus == (2, 3)  # a plan launcher says nothing: the runner's list stands
    assert offer_of({}, None, None).gpus is None  # not known


# --- GPUs -----------------------------------------------------------------------------------------------------


def test_gpu_choices_prefer_one_node_then_lowest() -> None:
    nodes = {0: 0, 1: 0, 2: 1, 3: 1}
    assert next(choices(2, (0, 1, 2, 3), {0}, nodes)) == ((2, 3), 1)  # node 0 has one free: node 1's pair
    assert list(choices(2, (0, 1, 2, 3), {0, 2}, nodes)) == [((1, 3), None)]  # no node has two: the lowest
    assert next(choices(1, (0, 1, 2, 3), set(), nodes, prefer=1)) == ((2,), 1)
    assert list(choices((3,), (0, 1, 2, 3), {3}, nodes)) == []


def test_ResourceAllocator_gpus_by_count_never_twice() -> None:
    gpus = runner()
    taken = [lease(gpus, gpus=1).gpus for _ in range(4)]
    assert sorted(taken) == [(0,), (1,), (2,), (3,)]
    assert gpus.try_lease(Request(gpus=1)) is None and gpus.available_gpus() == []


def test_ResourceAllocator_exact_gpus() -> None:
    gpus = runner()
    assert lease(gpus, gpus=(3,)).gpus == (3,)
    assert gpus.try_lease(Request(gpus=(3,))) is None
    assert lease(gpus, gpus=3).gpus == (0, 1, 2)


def test_ResourceAllocator_refuses_what_it_can_never_give() -> None:
    gpus = runner(offer=Offer(gpus=(0, 1, 2, 3), gpu_error=None))
    with pytest.raises(ConfigError, match=r"gpus=5 is more than the 4 GPUs it offers \(0,1,2,3\)"):
        gpus.check(Request(gpus=5))
    with pytest.raises(ConfigError, match="GPU 7 is not one it offers"):
        gpus.try_lease(Request(gpus=(1, 7)))
    none = runner(offer=Offer(gpus=(), gpu_error="nvidia-smi: exit status 9"))
    with pytest.raises(ConfigError, match=r"more than the 0 GPUs it offers \(none\) \(detecting them failed"):
        none.check(Request(gpus=1))
    runner(offer=Offer()).check(Request(gpus=64))  # not known yet: its hello will say


def test_ResourceAllocator_all_or_nothing() -> None:
    both = runner([0, 1, 2, 3])
    machine(both)
    held = lease(both, threads=4)
    assert both.try_lease(Request(threads=1, gpus=1)) is None
    assert both.available_gpus() == [0, 1, 2, 3]  # no GPU was kept for the command that could not start
    both.release(held)
    assert lease(both, threads=1, gpus=1).gpus == (0,)


def test_ResourceAllocator_cores_come_from_the_gpus_node() -> None:
    declared = runner(range(4), {0: [0, 1], 1: [2, 3]})
    first = lease(declared, gpus=(2,))
    assert first.cores == (2,) and first.numa_node == 1
    # the machine's nodes (its hello), where the runner declares none
    pooled = runner(range(4))
    machine(pooled)
    got = [lease(pooled, gpus=1) for _ in range(4)]
    assert [(g.gpus, g.cores) for g in got] == [((0,), (0,)), ((1,), (1,)), ((2,), (2,)), ((3,), (3,))]


def test_ResourceAllocator_a_gpus_node_with_busy_cores_gives_the_other_nodes_gpus() -> None:
    pooled = runner(range(4), {0: [0, 1], 1: [2, 3]})
    machine(pooled)
    lease(pooled, threads=2, numa_node=0)  # node 0's cores busy, its GPUs free
    got = lease(pooled, gpus=1)
    assert got.gpus == (2,) and got.cores == (2,)


def test_ResourceAllocator_a_node_too_small_for_the_threads_does_not_bind_them() -> None:
    pooled = runner(range(4), {0: [0], 1: [1, 2, 3]}, offer=Offer(gpus=(0,), gpu_nodes={0: 0}))
    got = lease(pooled, gpus=1, threads=2)
    assert got.gpus == (0,) and len(got.cores) == 2


def test_ResourceAllocator_memory_waits_for_room() -> None:
    memory = runner(offer=Offer(gpus=(), memory=GIB))
    machine(memory, memory=GIB)
    first, second = lease(memory, memory=400 << 20), lease(memory, memory=400 << 20)
    assert memory.try_lease(Request(memory=400 << 20)) is None
    assert not memory.could_fit_now(Request(memory=400 << 20))
    memory.release(first)
    assert memory.could_fit_now(Request(memory=400 << 20))
    with pytest.raises(ConfigError, match=r"memory=2 GiB is more than the 1 GiB its machine offers"):
        memory.check(Request(memory=2 * GIB))
    memory.release(second)
    assert memory.machine.reserved == 0


def test_ResourceAllocator_two_runners_of_one_machine_share_gpus_and_memory() -> None:
    local, server = runner(offer=Offer(gpus=(0, 1), memory=GIB)), runner(offer=Offer(gpus=(1, 2), memory=GIB))
    shared = machine(local, server, memory=GIB)
    a = lease(server, gpus=1, memory=GIB // 2)
    assert a.gpus == (1,)
    assert lease(local, gpus=1).gpus == (0,)
    assert local.try_lease(Request(gpus=1)) is None  # GPU 1 is the other runner's now
    assert local.try_lease(Request(memory=GIB // 2 + 1)) is None
    server.release(a)
    assert local.available_gpus() == [1] and shared.reserved == 0


def test_ResourceAllocator_release_twice_raises() -> None:
    gpus = runner()
    got = lease(gpus, gpus=1)
    gpus.release(got)
    with pytest.raises(RuntimeError, match="not held"):
        gpus.release(got)


def test_machine_memory_the_smallest_given_pool_wins() -> None:
    assert machine_memory([Offer(memory=4 * GIB), Offer(memory=GIB, memory_given=True),
                           Offer(memory=2 * GIB, memory_given=True)]) == (GIB, True)
    assert machine_memory([Offer(memory=4 * GIB), Offer(memory=3 * GIB)]) == (3 * GIB, False)
    assert machine_memory([Offer()]) == (None, False)


# --- properties -------------------------------------------------------------------------------------------------


class SharedMachine(RuleBasedStateMachine):
    """Two runners of one machine -- pools and GPU offers that overlap -- leasing and releasing at random: no
    CPU or GPU is ever held twice, the memory reserved never exceeds the pool, and a refusal takes nothing."""

    @initialize(memory=st.integers(1, 8), data=st.data())
    def setup(self, memory: int, data: st.DataObject) -> None:
        offers = [Offer(gpus=tuple(sorted(data.draw(st.sets(st.integers(0, 4), max_size=4)))),
                        gpu_nodes={0: 0, 1: 0, 2: 1, 3: 1}, node_cpus={0: (0, 1, 2), 1: (3, 4, 5)}) for _ in range(2)]
        self.runners = [runner(range(0, 4), offer=offers[0]), runner(range(2, 6), {0: [2], 1: [3, 4, 5]}, offers[1])]
        self.shared = machine(*self.runners, memory=memory)
        self.held: list[tuple[ResourceAllocator, Lease]] = []

    @rule(data=st.data())
    def take(self, data: st.DataObject) -> None:
        allocator = data.draw(st.sampled_from(self.runners))
        gpus = data.draw(st.none() | st.integers(1, 3) | st.sets(st.integers(0, 4), min_size=1).map(
            lambda s: tuple(sorted(s))))
        request = Request(threads=data.draw(st.integers(1, 3)), gpus=gpus, memory=data.draw(st.none() | st.integers(1, 4)))
        before = (set(self.shared.taken), set(self.shared.gpus), self.shared.reserved)
        try:
            got = allocator.try_lease(request)
        except ConfigError:
            got = None
        if got is None:
            assert (set(self.shared.taken), set(self.shared.gpus), self.shared.reserved) == before
            return
        assert len(got.cores) == request.threads and got.memory == (request.memory or 0)
        assert len(got.gpus) == (len(gpus) if isinstance(gpus, tuple) else gpus or 0)
        assert set(got.gpus) <= set(allocator.offer.gpus or ())
        self.held.append((allocator, got))

    @rule(data=st.data())
    def give_back(self, data: st.DataObject) -> None:
        if self.held:
            allocator, got = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
            allocator.release(got)

    @invariant()
    def nothing_held_twice(self) -> None:
        if not hasattr(self, "shared"):
            return
        cpus = [cpu for _, got in self.held for cpu in got.cores]
        gpus = [gpu for _, got in self.held for gpu in got.gpus]
        assert len(cpus) == len(set(cpus)) and set(cpus) == self.shared.taken
        assert len(gpus) == len(set(gpus)) and set(gpus) == self.shared.gpus
        assert self.shared.reserved == sum(got.memory for _, got in self.held)
        assert self.shared.memory is None or self.shared.reserved <= self.shared.memory


SharedMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
test_ResourceAllocator_random_leases_keep_the_books = SharedMachine.TestCase
