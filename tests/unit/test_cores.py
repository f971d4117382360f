"""Tests for the core allocator: layout validation, placement policy, lease bookkeeping, concurrency."""

from __future__ import annotations

import random
import threading

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule

from parallux._cores import CoreAllocator, CoreLayout, Lease, format_cores, parse_core_layout
from parallux._errors import ConfigError


def allocator(core_pool: object = None, numa_nodes: object = None) -> CoreAllocator:
    layout = parse_core_layout(core_pool, numa_nodes)
    assert layout is not None
    return CoreAllocator(layout)


def two_nodes() -> CoreAllocator:
    return allocator(range(8), {0: range(4), 1: range(4, 8)})


# --- parse_core_layout ---------------------------------------------------------------------------------------


def test_parse_core_layout_none_when_nothing_declared() -> None:
    assert parse_core_layout(None, None) is None


@pytest.mark.parametrize("pool", [range(3), [2, 0, 1], (0, 1, 2), {0, 1, 2}, frozenset({2, 1, 0})])
def test_parse_core_layout_accepts_containers_and_sorts(pool: object) -> None:
    assert parse_core_layout(pool, None) == CoreLayout(cores=(0, 1, 2), nodes={})


def test_parse_core_layout_nodes_alone_make_the_pool_their_union() -> None:
    layout = parse_core_layout(None, {1: [6, 4], 0: range(2)})
    assert layout is not None
    assert layout.cores == (0, 1, 4, 6)
    assert layout.nodes == {0: (0, 1), 1: (4, 6)}
    assert list(layout.nodes) == [0, 1]


def test_parse_core_layout_allows_pool_cores_outside_every_node() -> None:
    layout = parse_core_layout(range(6), {0: range(2)})
    assert layout is not None
    assert layout.node_of(1) == 0
    assert layout.node_of(5) is None


@pytest.mark.parametrize(
    ("pool", "nodes", "message"),
    [
        ([], None, "core_pool is empty"),
        (range(0), None, "core_pool is empty"),
        ([0, 1.5], None, "not 1.5"),
        (["3"], None, "not '3'"),
        ([0, True], None, "not True"),
        ([0, -2], None, "negative, got -2"),
        ([0, 1, 1], None, "core 1 more than once"),
        ("0123", None, "core_pool must be a range"),
        (4, None, "not 4"),
        ({0: 1}, None, "core_pool must be a range"),
        (None, {}, "numa_nodes is empty"),
        (None, [range(4)], "numa_nodes must be a dict"),
        (None, {0: []}, r"numa_nodes\[0\] is empty"),
        (None, {0: range(4), 1: range(3, 6)}, "numa nodes 0 and 1 overlap: both contain core 3"),
        (None, {"0": range(4)}, "node id must be an integer, not '0'"),
        (None, {True: range(4)}, "node id must be an integer, not True"),
        (None, {-1: range(4)}, "node id must not be negative, got -1"),
        (None, {0: 3}, r"numa_nodes\[0\] must be a range"),
        (None, {0: [0, 0]}, r"numa_nodes\[0\] names core 0 more than once"),
        (None, {0: [0, -1]}, "negative, got -1"),
        (range(4), {0: range(2), 1: range(2, 6)}, "numa node 1 has cores outside core_pool: 4,5"),
    ],
)
def test_parse_core_layout_rejects_bad_input(pool: object, nodes: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_core_layout(pool, nodes)


# --- check_request -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("threads", "numa_node", "cores", "message"),
    [
        (0, None, None, "threads must be a positive integer, not 0"),
        (True, None, None, "threads must be a positive integer, not True"),
        (2.0, None, None, "threads must be a positive integer"),
        (1, 2, None, r"numa_node=2 is not a declared numa node \(declared: 0, 1\)"),
        (1, True, None, "numa_node=True is not a declared"),
        (5, 0, None, "threads=5 is more than the 4 cores of numa node 0"),
        (9, None, None, "threads=9 is more than the 8 cores of the pool"),
        (1, None, [8], "cores 8 are not in the runner's core pool"),
        (2, None, [1, 1], "names a core more than once"),
        (3, None, [1, 2], r"names 2 cores but threads=3"),
        (2, 0, [3, 4], "cores 4 are not in numa node 0"),
        (1, None, "1", "cores must be a list"),
        (1, None, [1.0], "core id must be an integer"),
    ],
)
def test_CoreAllocator_check_request_rejects_impossible(
        threads: int, numa_node: int | None, cores: list[int] | None, message: str) -> None:
    alloc = two_nodes()
    with pytest.raises(ConfigError, match=message):
        alloc.check_request(threads, numa_node, cores)
    with pytest.raises(ConfigError, match=message):
        alloc.try_lease(threads, numa_node, cores)
    assert alloc.available() == list(range(8))


def test_CoreAllocator_check_request_numa_node_without_declared_nodes() -> None:
    with pytest.raises(ConfigError, match=r"declared: none"):
        allocator(range(4)).check_request(1, 0, None)


def test_CoreAllocator_check_request_accepts_possible_even_when_busy() -> None:
    alloc = two_nodes()
    alloc.try_lease(8)
    alloc.check_request(4, 1, [4, 5, 6, 7])  # would fit on an idle runner, so it is not an error


# --- placement -----------------------------------------------------------------------------------------------


def test_CoreAllocator_try_lease_numa_node_takes_lowest_free_of_that_node() -> None:
    alloc = two_nodes()
    first = alloc.try_lease(2, numa_node=1)
    assert first is not None and (first.cores, first.numa_node) == ((4, 5), 1)
    lease = alloc.try_lease(2, numa_node=1)
    assert lease is not None and (lease.cores, lease.numa_node) == ((6, 7), 1)
    assert alloc.try_lease(1, numa_node=1) is None
    assert alloc.available(1) == []
    assert alloc.available(0) == [0, 1, 2, 3]


def test_CoreAllocator_try_lease_exact_cores() -> None:
    alloc = two_nodes()
    lease = alloc.try_lease(3, cores=[7, 0, 5])
    assert lease is not None
    assert lease.cores == (0, 5, 7)
    assert lease.numa_node is None  # spans two nodes
    assert alloc.try_lease(2, cores=[1, 5]) is None  # 5 is taken: nothing is taken partially
    assert alloc.available() == [1, 2, 3, 4, 6]
    same_node = alloc.try_lease(2, cores=[4, 6])
    assert same_node is not None and same_node.numa_node == 1


def test_CoreAllocator_try_lease_multi_thread_prefers_one_node() -> None:
    alloc = two_nodes()
    alloc.try_lease(1, cores=[0])
    lease = alloc.try_lease(4)
    assert lease is not None
    assert (lease.cores, lease.numa_node) == ((4, 5, 6, 7), 1)  # not 1,2,3,4 across the node boundary


def test_CoreAllocator_try_lease_best_fit_keeps_the_big_hole() -> None:
    alloc = two_nodes()
    alloc.try_lease(2, cores=[0, 1])  # node 0 has 2 free, node 1 has 4
    small = alloc.try_lease(2)
    assert small is not None and small.cores == (2, 3)
    big = alloc.try_lease(4)
    assert big is not None and big.cores == (4, 5, 6, 7)


def test_CoreAllocator_try_lease_single_thread_best_fit() -> None:
    alloc = two_nodes()
    alloc.try_lease(1, cores=[4])
    one = alloc.try_lease(1)
    assert one is not None and (one.cores, one.numa_node) == ((5,), 1)


def test_CoreAllocator_try_lease_spreads_from_emptiest_nodes_when_no_node_fits() -> None:
    alloc = allocator(None, {0: range(4), 1: range(4, 8), 2: range(8, 12)})
    alloc.try_lease(3, cores=[0, 1, 2])  # free: node0 {3}, node1 4 cores, node2 4 cores
    alloc.try_lease(1, cores=[8])  # free: node0 {3}, node1 4 cores, node2 {9,10,11}
    lease = alloc.try_lease(6)
    assert lease is not None
    assert lease.cores == (4, 5, 6, 7, 9, 10)  # node 1 whole, then node 2; the lone core 3 stays
    assert lease.numa_node is None
    last = alloc.try_lease(2)
    assert last is not None and last.cores == (3, 11)
    assert alloc.try_lease(1) is None
    assert alloc.could_fit_now(1) is False


def test_CoreAllocator_try_lease_without_nodes_takes_lowest() -> None:
    alloc = allocator([3, 9, 1, 5])
    first = alloc.try_lease(2)
    assert first is not None and (first.cores, first.numa_node) == ((1, 3), None)
    assert alloc.try_lease(3) is None
    second = alloc.try_lease(2)
    assert second is not None and second.cores == (5, 9)


def test_CoreAllocator_try_lease_uses_cores_outside_nodes_last() -> None:
    alloc = allocator(range(6), {0: range(2)})
    first = alloc.try_lease(2)
    assert first is not None and (first.cores, first.numa_node) == ((0, 1), 0)
    rest = alloc.try_lease(1)
    assert rest is not None and (rest.cores, rest.numa_node) == ((2,), None)


def test_CoreAllocator_could_fit_now_takes_nothing() -> None:
    alloc = two_nodes()
    assert alloc.could_fit_now(4, numa_node=0)
    assert alloc.could_fit_now(2, cores=[0, 7])
    assert alloc.available() == list(range(8))
    alloc.try_lease(1, cores=[7])
    assert not alloc.could_fit_now(2, cores=[0, 7])
    assert not alloc.could_fit_now(4, numa_node=1)


def test_CoreAllocator_configured_and_available() -> None:
    alloc = two_nodes()
    assert alloc.configured() == list(range(8))
    assert alloc.configured(1) == [4, 5, 6, 7]
    lease = alloc.try_lease(2, numa_node=1)
    assert lease is not None
    assert alloc.available() == [0, 1, 2, 3, 6, 7]
    assert alloc.available(1) == [6, 7]
    alloc.release(lease)
    assert alloc.available(1) == [4, 5, 6, 7]
    with pytest.raises(ConfigError, match="numa_node=3"):
        alloc.available(3)


def test_format_cores_is_a_numactl_list() -> None:
    assert format_cores((0, 1, 4)) == "0,1,4"


# --- release -------------------------------------------------------------------------------------------------


def test_CoreAllocator_release_twice_raises() -> None:
    alloc = two_nodes()
    lease = alloc.try_lease(2)
    assert lease is not None
    alloc.release(lease)
    with pytest.raises(RuntimeError, match="not held"):
        alloc.release(lease)


def test_CoreAllocator_release_stale_lease_does_not_free_the_new_holder() -> None:
    alloc = two_nodes()
    old = alloc.try_lease(1, cores=[3])
    assert old is not None
    alloc.release(old)
    new = alloc.try_lease(1, cores=[3])
    assert new is not None
    with pytest.raises(RuntimeError):
        alloc.release(old)
    assert 3 not in alloc.available()


def test_CoreAllocator_release_foreign_lease_raises() -> None:
    lease = two_nodes().try_lease(1)
    assert lease is not None
    with pytest.raises(RuntimeError):
        two_nodes().release(lease)


# --- concurrency ---------------------------------------------------------------------------------------------


def test_CoreAllocator_threads_never_share_a_core() -> None:
    alloc = allocator(None, {0: range(8), 1: range(8, 16)})
    holders: dict[int, int] = {}
    holders_lock = threading.Lock()
    errors: list[str] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(400):
            lease = alloc.try_lease(rng.randint(1, 5), rng.choice([None, None, 0, 1]))
            if lease is None:
                continue
            with holders_lock:
                for core in lease.cores:
                    if core in holders:
                        errors.append(f"core {core} leased by {holders[core]} and {seed}")
                    holders[core] = seed
            with holders_lock:
                for core in lease.cores:
                    del holders[core]
            alloc.release(lease)

    workers = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert errors == []
    assert alloc.available() == list(range(16))


# --- properties ----------------------------------------------------------------------------------------------


@st.composite
def layouts(draw: st.DrawFn) -> CoreLayout:
    """Random pools, with or without nodes, sometimes with pool cores outside every node."""
    pool = draw(st.lists(st.integers(0, 40), min_size=1, max_size=14, unique=True))
    node_count = draw(st.integers(0, 4))
    if node_count == 0:
        layout = parse_core_layout(pool, None)
    else:
        owner = draw(st.lists(st.integers(-1, node_count - 1), min_size=len(pool), max_size=len(pool)))
        nodes = {n: [c for c, o in zip(pool, owner) if o == n] for n in range(node_count)}
        nodes = {n: cores for n, cores in nodes.items() if cores}
        if not nodes:
            nodes = {0: pool[:1]}
        layout = parse_core_layout(pool if draw(st.booleans()) or -1 in owner else None, nodes)
    assert layout is not None
    return layout


class AllocatorMachine(RuleBasedStateMachine):
    """Random lease / release / late release ("cancel") sequences against a model of who holds what."""

    leases = Bundle("leases")

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[int, Lease] = {}
        self.pending: list[Lease] = []

    @initialize(layout=layouts())
    def setup(self, layout: CoreLayout) -> None:
        self.layout = layout
        self.alloc = CoreAllocator(layout)

    @rule(target=leases, data=st.data())
    def lease(self, data: st.DataObject) -> Lease | None:
        request = data.draw(self.requests())
        try:
            self.alloc.check_request(*request)
        except ConfigError:
            with pytest.raises(ConfigError):
                self.alloc.try_lease(*request)
            return None
        fits = self.alloc.could_fit_now(*request)
        lease = self.alloc.try_lease(*request)
        assert (lease is not None) == fits
        if lease is None:
            assert request[2] is not None or len(self.alloc.available(request[1])) < request[0]
            return None
        self.check_placement(lease, *request)
        for core in lease.cores:
            assert core not in self.held, f"core {core} handed out twice"
            self.held[core] = lease
        self.pending.append(lease)
        return lease

    def requests(self) -> st.SearchStrategy[tuple[int, int | None, list[int] | None]]:
        node = st.none() | st.sampled_from(sorted(self.layout.nodes) or [None])
        exact = st.none() | st.lists(st.sampled_from(self.layout.cores), min_size=1, unique=True)
        return st.tuples(st.integers(1, len(self.layout.cores) + 1), node, exact).map(
            lambda r: (len(r[2]), r[1], r[2]) if r[2] is not None else r)

    def check_placement(self, lease: Lease, threads: int, node: int | None, cores: list[int] | None) -> None:
        assert len(lease.cores) == threads
        assert list(lease.cores) == sorted(lease.cores)
        if cores is not None:
            assert lease.cores == tuple(sorted(cores))
        if node is not None:
            assert lease.numa_node == node
            assert set(lease.cores) <= set(self.layout.nodes[node])
        if node is None and cores is None and self.layout.nodes:
            fitting = [n for n in self.layout.nodes if len(self.free_before_except(n)) >= threads]
            if fitting:
                assert lease.numa_node in fitting, "a single node could hold it, so one must be used"

    def free_before_except(self, node: int) -> list[int]:
        """Cores of ``node`` that were free before the lease now being checked was taken."""
        return [c for c in self.layout.nodes[node] if c not in self.held]

    @rule(lease=consumes(leases))
    def release(self, lease: Lease | None) -> None:
        """Release in bundle order: an ordinary command ending."""
        if lease is not None and lease in self.pending:
            self.drop(lease)

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        """Release any still-held lease, chosen at random: a command cancelled at an arbitrary moment."""
        if self.pending:
            self.drop(data.draw(st.sampled_from(self.pending)))

    @rule(data=st.data())
    def release_twice(self, data: st.DataObject) -> None:
        """Releasing a lease that is not held is always an error and changes nothing."""
        stale = Lease(cores=self.layout.cores[:1], numa_node=None)
        if self.pending and data.draw(st.booleans()):
            stale = self.pending[0]
            self.drop(stale)
        with pytest.raises(RuntimeError):
            self.alloc.release(stale)

    def drop(self, lease: Lease) -> None:
        self.alloc.release(lease)
        self.pending.remove(lease)
        for core in lease.cores:
            del self.held[core]

    @invariant()
    def available_plus_leased_is_the_pool(self) -> None:
        available = self.alloc.available()
        assert not set(available) & set(self.held), "a core is both free and leased"
        assert sorted(available + list(self.held)) == list(self.layout.cores), "a core was lost"
        for node, members in self.layout.nodes.items():
            assert self.alloc.available(node) == [c for c in members if c not in self.held]

    def teardown(self) -> None:
        if not hasattr(self, "alloc"):
            return
        for lease in list(self.pending):
            self.drop(lease)
        assert self.alloc.available() == list(self.layout.cores)


AllocatorMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
test_CoreAllocator_random_leases_keep_the_books = AllocatorMachine.TestCase
