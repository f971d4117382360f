"""GPUs: the ``gpus=`` options, which GPUs a request takes, and what a command leasing them is told.

A runner offers GPU indices (``gpus=None``: those its launcher's ``nvidia-smi`` lists, ``gpus=[...]``: those,
``gpus=[]``: none); a command asks for a count (``gpus=2``) or exactly some (``gpus=[3]``). A count takes GPUs
of one NUMA node when one node has enough free, the lowest indices first, so that the command's cores can
come from that node too (``_allocator``).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Mapping

from ._errors import ConfigError

VISIBLE = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "PARALLUX_GPUS")
_CONTAINERS = (list, tuple, range, set, frozenset)


def gpu_request(value: object) -> int | tuple[int, ...] | None:
    """A command's ``gpus=``: a count, or exactly these indices (sorted); None for none (``None``, 0, ``[]``)."""
    if value is None:
        return None
    if isinstance(value, _CONTAINERS):
        indices = _indices(value, "gpus")
        return indices or None
    count = _index(value, "gpus", "a count of GPUs or a list of GPU indices")
    return count or None


def gpu_offer(value: object) -> tuple[int, ...] | None:
    """A runner's ``gpus=``: None to detect them (nvidia-smi), else the indices its commands may lease."""
    if value is None:
        return None
    if not isinstance(value, _CONTAINERS):
        raise ConfigError(f"a runner's gpus must be None (detect them with nvidia-smi) or a list of GPU indices, "
                          f"not {value!r}")
    return _indices(value, "a runner's gpus")


def _indices(values: Iterable[object], what: str) -> tuple[int, ...]:
    indices = [_index(value, what, "a GPU index") for value in values]
    if len(set(indices)) != len(indices):
        raise ConfigError(f"{what}={sorted(indices)!r} names a GPU more than once")
    return tuple(sorted(indices))


def _index(value: object, what: str, meaning: str) -> int:
    if isinstance(value, bool):  # (an int subclass, and always a mistake here)
        raise ConfigError(f"{what}: {meaning} is an integer, not {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ConfigError(f"{what}: {meaning} is an integer, not {value!r}") from None
    if number < 0:
        raise ConfigError(f"{what}: {meaning} must not be negative, got {number}")
    return number


def choices(wanted: int | tuple[int, ...], offered: tuple[int, ...], taken: set[int],
            nodes: Mapping[int, int], prefer: int | None = None) -> Iterator[tuple[tuple[int, ...], int | None]]:
    """The sets of free GPUs that would meet ``wanted``, best first, each with its one NUMA node (None: unknown
    or several): exact indices as asked; a count from one node (``prefer`` first, then the node holding the
    lowest free index), then the lowest free indices whatever their nodes."""
    if isinstance(wanted, tuple):
        if taken.isdisjoint(wanted):
            yield wanted, node_of(wanted, nodes)
        return
    free = [gpu for gpu in offered if gpu not in taken]
    if len(free) < wanted:
        return
    by_node: dict[int, list[int]] = {}
    for gpu in free:
        if gpu in nodes:
            by_node.setdefault(nodes[gpu], []).append(gpu)
    order = sorted(by_node, key=lambda node: (node != prefer, by_node[node][0]))
    tried = set()
    for node in order:
        if len(by_node[node]) >= wanted:
            tried.add(chosen := tuple(by_node[node][:wanted]))
            yield chosen, node
    if (lowest := tuple(free[:wanted])) not in tried:
        yield lowest, node_of(lowest, nodes)


def node_of(gpus: Iterable[int], nodes: Mapping[int, int]) -> int | None:
    """The NUMA node of all these GPUs; None when they are on several or one's is unknown."""
    found = {nodes.get(gpu) for gpu in gpus}
    return found.pop() if len(found) == 1 else None


def gpu_variables(gpus: tuple[int, ...]) -> dict[str, str]:
    """What a command leasing ``gpus`` is told: CUDA's, HIP's and ROCm's visible devices, and parallux's own;
    and that CUDA numbers GPUs as nvidia-smi does (in PCI bus order: by default it puts the fastest first,
    and index 0 would be another GPU than the one leased)."""
    return {**dict.fromkeys(VISIBLE, format_gpus(gpus)), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def format_gpus(gpus: Iterable[int]) -> str:
    return ",".join(str(gpu) for gpu in gpus)


def gpu_hello(offer: tuple[int, ...] | None, env: Mapping[str, str]) -> dict[str, object]:
    """What a seat's hello asks of its launcher about GPUs: the runner's list (none: detect them), and the
    PATH its ``nvidia-smi`` is looked for on (the runner's ``env=`` PATH, where it sets one)."""
    hello: dict[str, object] = {} if offer is None else {"gpus": list(offer)}
    if env.get("PATH"):
        hello["path"] = env["PATH"]
    return hello
