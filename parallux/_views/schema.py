"""What each record of a run log must hold for the views to read it: the type of every field they use.

A record that does not fit -- a list as ``seq``, text as a time, a number as a name, a time past any
calendar -- is skipped whole (and named, with its file and line, in one warning), never half read: what the
views get from a record is then always what they expect, so no value in a log can make a view fail. Fields
the views do not know (a later schema's) are left alone; so are events they do not read.

Two checks say the same: ``problem`` judges one record (its shape, the fields and their types, once per
shape; its numbers and lists on each), and ``objects_fit`` the commands and attempts the reader built from
records it took unchecked, all at once (a few passes in C): the reader's fast way, for the 200,000 records of
a 100,000-command run, with ``problem`` as its way back when that fails (``reader``).
"""

from __future__ import annotations

from itertools import chain, repeat
from operator import attrgetter, itemgetter
from typing import Any, Callable

# Numbers (times, durations, counts, sizes) must lie within these: an epoch beyond them has no calendar date
# (strftime and datetime fail on it), and every count or size a run can have is far inside them.
LOWEST, HIGHEST = -1e10, 1e11

_NONE = type(None)
INT = (int,)
NUMBER = (int, float)
TEXT = (str,)
FLAG = (bool,)
LIST = (list,)
OBJECT = (dict,)
METRIC_VALUES = (float, int)  # (a mapping's values: any finite number -- a metric may count 3e12 instructions)


def _maybe(kinds: tuple[type, ...]) -> tuple[type, ...]:
    return (*kinds, _NONE)


_WHERE = {"runner": _maybe(TEXT), "host": _maybe(TEXT), "work_dir": _maybe(TEXT), "cores": _maybe(LIST),
          "numa_node": _maybe(INT), "gpus": _maybe(LIST), "attempt": INT}
_OUTCOME = {"status": _maybe(TEXT), "returncode": _maybe(INT), "start": _maybe(NUMBER), "end": _maybe(NUMBER),
            "duration": _maybe(NUMBER), "user_seconds": _maybe(NUMBER), "system_seconds": _maybe(NUMBER),
            "max_rss_kb": _maybe(NUMBER), "signal": _maybe(INT), "error": _maybe(TEXT), "resumed": _maybe(FLAG),
            "stderr_tail": _maybe(TEXT), "from_run": _maybe(TEXT), "metrics": _maybe(OBJECT),
            "memory_limit": _maybe(INT), "after": _maybe(LIST)}
_COMMAND = {"event": TEXT, "time": NUMBER, "seq": INT, "name": TEXT}
_SIZES = ("memory_limit",)  # bytes: 128 GiB and more on a big node, beyond the bound of times and counts


class Spec:
    """One event's fields: their types, those that must be there, and what is checked beyond the type."""

    def __init__(self, fields: dict[str, tuple[type, ...]], required: tuple[str, ...] = (),
                 int_lists: tuple[str, ...] = (), text_lists: tuple[str, ...] = (),
                 mappings: dict[str, tuple[type, ...]] | None = None, unbounded: tuple[str, ...] = (),
                 number_lists: tuple[str, ...] = (), objects: dict[str, Spec] | None = None,
                 dependency_lists: tuple[str, ...] = ()) -> None:
        self.fields = fields
        self.required = required
        # (unbounded: numbers that are no time, count or size, such as a seed, which may take any 64 bits, or
        # a machine's memory in bytes, beyond 1e11 from 128 GiB on)
        self.numbers = tuple(k for k, kinds in fields.items() if int in kinds and k not in unbounded)
        self.int_lists = int_lists          # lists of whole numbers (cores)
        self.text_lists = text_lists        # lists of text (argv)
        self.number_lists = number_lists   # lists of any numbers (a load average)
        self.mappings = mappings or {}      # objects: text -> a value of these types (counts)
        self.objects = objects or {}        # objects with fields of their own (a machine's environment)
        self.dependency_lists = dependency_lists  # lists of {"seq": int, "work_relpath": text} (after)


# What a machine's launcher found there (SPEC 17), and the config's place in git: objects inside a record.
_ENVIRONMENT = Spec({"hostname": _maybe(TEXT), "os": _maybe(TEXT), "kernel": _maybe(TEXT), "arch": _maybe(TEXT),
                     "cpu_model": _maybe(TEXT), "microcode": _maybe(TEXT), "sockets": _maybe(INT),
                     "cores_per_socket": _maybe(INT), "threads_per_core": _maybe(INT), "logical_cpus": _maybe(INT),
                     "numa_nodes": _maybe(INT), "memory_bytes": _maybe(INT), "cpufreq_driver": _maybe(TEXT),
                     "governors": _maybe(OBJECT), "min_khz": _maybe(INT), "max_khz": _maybe(INT),
                     "turbo": _maybe(TEXT), "isolated": _maybe(LIST), "nohz_full": _maybe(LIST),
                     "load": _maybe(LIST), "cpus": _maybe(LIST), "parallux": _maybe(TEXT), "python": _maybe(TEXT)},
                    int_lists=("isolated", "nohz_full", "cpus"), number_lists=("load",),
                    mappings={"governors": LIST}, unbounded=("memory_bytes",))
_GIT = Spec({"commit": _maybe(TEXT), "dirty": _maybe(FLAG), "root": _maybe(TEXT)})

SPECS = {
    "run_started": Spec({"event": TEXT, "schema": INT, "run_id": TEXT, "config": _maybe(TEXT), "argv": LIST,
                         "time": NUMBER, "pid": _maybe(INT), "host": _maybe(TEXT), "python": _maybe(TEXT),
                         "parallux": _maybe(TEXT), "cwd": _maybe(TEXT), "log": _maybe(TEXT),
                         "config_sha256": _maybe(TEXT), "git": _maybe(OBJECT)},
                        text_lists=("argv",), objects={"git": _GIT}),
    "runner": Spec({"event": TEXT, "time": NUMBER, "name": TEXT, "kind": _maybe(TEXT), "host": _maybe(TEXT),
                    "workspace": _maybe(TEXT), "login": _maybe(LIST),
                    "max_jobs": _maybe(INT), "logical_cores": _maybe(INT), "machine": _maybe(TEXT),
                    "core_pool": _maybe(LIST),
                    "numa_nodes": _maybe(OBJECT), "sbatch": _maybe(LIST)},
                   required=("name",), int_lists=("core_pool",), text_lists=("login", "sbatch"),
                   mappings={"numa_nodes": LIST}),
    "queued": Spec({**_COMMAND, "command": _maybe(TEXT), "work_relpath": _maybe(TEXT),
                    "work_generated": _maybe(FLAG), "bench": _maybe(TEXT), "repetition": _maybe(TEXT),
                    "after": _maybe(LIST)},
                   required=("seq",), dependency_lists=("after",)),
    "started": Spec({**_COMMAND, **_WHERE}, required=("seq",), int_lists=("cores", "gpus")),
    "retrying": Spec({**_COMMAND, **_WHERE, **_OUTCOME}, required=("seq",), int_lists=("cores", "gpus"),
                     mappings={"metrics": METRIC_VALUES}, unbounded=_SIZES),
    "finished": Spec({**_COMMAND, **_WHERE, **_OUTCOME}, required=("seq",), int_lists=("cores", "gpus"),
                     mappings={"metrics": METRIC_VALUES}, unbounded=_SIZES, dependency_lists=("after",)),
    "benchmark": Spec({"event": TEXT, "time": NUMBER, "key": TEXT, "name": _maybe(TEXT), "command": _maybe(TEXT),
                       "repeat": _maybe(INT), "warmup": _maybe(INT), "metrics": _maybe(LIST)},
                      required=("key",), text_lists=("metrics",)),
    "order": Spec({"event": TEXT, "time": NUMBER, "mode": TEXT, "seed": _maybe(INT)}, required=("mode",),
                  unbounded=("seed",)),
    "run_finished": Spec({"event": TEXT, "time": NUMBER, "counts": OBJECT, "elapsed": _maybe(NUMBER),
                          "retries": _maybe(INT), "resumed": _maybe(INT), "busy_seconds": _maybe(OBJECT),
                          "started": _maybe(INT), "exit_status": _maybe(INT), "halted": _maybe(TEXT)},
                         mappings={"counts": INT, "busy_seconds": NUMBER}),
    "machine": Spec({"event": TEXT, "time": NUMBER, "label": TEXT, "runners": _maybe(LIST),
                     "boot_id": _maybe(TEXT), "machine_id": _maybe(TEXT), "environment": _maybe(OBJECT)},
                    required=("label",), text_lists=("runners",), objects={"environment": _ENVIRONMENT}),
    "machine_load": Spec({"event": TEXT, "time": NUMBER, "label": TEXT, "load": _maybe(LIST)},
                         required=("label",), number_lists=("load",)),
    "probe": Spec({"event": TEXT, "time": NUMBER, "name": TEXT, "command": _maybe(TEXT), "machine": _maybe(TEXT),
                   "runner": _maybe(TEXT), "returncode": _maybe(INT), "output": _maybe(TEXT),
                   "truncated": _maybe(FLAG), "error": _maybe(TEXT)}, required=("name",)),
    "noise": Spec({"event": TEXT, "time": NUMBER, "machine": _maybe(TEXT), "check": _maybe(TEXT),
                   "message": TEXT}, required=("message",)),
}


COMMAND_EVENTS = frozenset(("queued", "started", "retrying", "finished"))
MACHINE_EVENTS = ("machine", "machine_load", "probe", "noise")  # what a run recorded of its machines (SPEC 17)

# What the reader builds from a command's records (``records``), each attribute's types: for the bulk check.
_MAYBE_NUMBER, _MAYBE_INT, _MAYBE_TEXT = {int, float, _NONE}, {int, _NONE}, {str, _NONE}
_COMMAND_ATTRIBUTES = {"seq": {int}, "name": {str}, "command": _MAYBE_TEXT, "work_relpath": _MAYBE_TEXT,
                       "queued": _MAYBE_NUMBER, "finished_at": _MAYBE_NUMBER,
                       "work_generated": {bool, _NONE}, "bench": _MAYBE_TEXT,
                       "repetition": _MAYBE_TEXT, "after": {list, _NONE}}  # (status: its attempt's)
_ATTEMPT_ATTRIBUTES = {"seq": {int}, "attempt": {int}, "runner": _MAYBE_TEXT, "host": _MAYBE_TEXT,
                       "cores": {list}, "gpus": {list}, "numa_node": _MAYBE_INT, "work_dir": _MAYBE_TEXT, "start": _MAYBE_NUMBER,
                       "end": _MAYBE_NUMBER, "status": {str}, "returncode": _MAYBE_INT,
                       "user_seconds": _MAYBE_NUMBER, "system_seconds": _MAYBE_NUMBER,
                       "max_rss_kb": _MAYBE_NUMBER, "signal": _MAYBE_INT, "error": _MAYBE_TEXT,
                       "stderr_tail": _MAYBE_TEXT, "metrics": {dict, _NONE}}  # (and _SIZES: their type only)


def _grouped(attributes: dict[str, set[type]]) -> list[tuple[Callable[[Any], Any], frozenset[type], bool]]:
    """The attributes grouped by the types they may have: (a getter of them all, those types, one or more)."""
    groups: dict[frozenset[type], list[str]] = {}
    for name, kinds in attributes.items():
        groups.setdefault(frozenset(kinds), []).append(name)
    return [(attrgetter(*names), kinds, len(names) > 1) for kinds, names in groups.items()]


_COMMAND_GROUPS, _ATTEMPT_GROUPS = _grouped(_COMMAND_ATTRIBUTES), _grouped(_ATTEMPT_ATTRIBUTES)


def objects_fit(commands: list[Any], attempts: list[Any]) -> bool:
    """Do the commands and attempts read without checking each record hold what ``problem`` lets through?
    Checked over all of them at once, in C: one pass per group of attributes of the same types."""
    return (_groups_fit(commands, _COMMAND_GROUPS) and _groups_fit(attempts, _ATTEMPT_GROUPS)
            and _values_fit(list(chain.from_iterable(map(attrgetter("cores"), attempts))), frozenset({int}))
            and _values_fit(list(chain.from_iterable(map(attrgetter("gpus"), attempts))), frozenset({int}))
            and all(set(map(type, map(attrgetter(size), attempts))) <= {int, _NONE} for size in _SIZES)
            and all(_to_metrics(a.metrics) for a in attempts if a.metrics)
            and all(_all_dependencies(c.after) for c in commands if c.after))


def _groups_fit(objects: list[Any], groups: list[tuple[Callable[[Any], Any], frozenset[type], bool]]) -> bool:
    for getter, kinds, several in groups:
        values = list(chain.from_iterable(map(getter, objects)) if several else map(getter, objects))
        if not _values_fit(values, kinds):
            return False
    return True


def _values_fit(values: list[Any], kinds: frozenset[type]) -> bool:
    """Values all of these types, and the numbers among them in range."""
    if not set(map(type, values)) <= kinds:
        return False
    if int not in kinds:
        return True
    numbers = list(filter(None, values))  # (None and 0 left out: 0 is in range)
    return not numbers or (LOWEST <= min(numbers) and max(numbers) <= HIGHEST)


# What the reader builds of a queued record and of an attempt's end, each field's types (None: also missing):
# what ``columns_fit`` checks of them, as ``objects_fit`` checks the objects the reader builds.
QUEUED_COLUMNS = {"seq": frozenset({int}), "time": frozenset(_MAYBE_NUMBER), "name": frozenset(_MAYBE_TEXT),
                  **{key: frozenset(kinds) for key, kinds in _COMMAND_ATTRIBUTES.items()
                     if key in ("command", "work_relpath", "work_generated", "bench", "repetition")}}
END_COLUMNS = {**{key: frozenset(kinds | {_NONE}) for key, kinds in _ATTEMPT_ATTRIBUTES.items()},
               "seq": frozenset({int}), "time": frozenset(_MAYBE_NUMBER), "resumed": frozenset({bool, _NONE}),
               "name": frozenset(_MAYBE_TEXT)}


def columns_fit(records: list[dict[str, Any]], columns: dict[str, frozenset[type]]) -> bool:
    """Do these records (of one event) hold what a view reads of them: each field of ``columns`` of those types
    (None: also missing), its numbers in range, cores a list of numbers, metrics finite numbers? Checked a
    field at a time over all of them, in C; False sends them to ``problem`` one by one."""
    for key, kinds in columns.items():
        values = list(map(dict.get, records, repeat(key)))
        if not _values_fit(values, kinds):
            return False
    for key in ("cores", "gpus"):
        lists = list(filter(None, map(dict.get, records, repeat(key))))
        if lists and not _values_fit(list(chain.from_iterable(lists)), frozenset({int})):
            return False
    return all(map(_to_metrics, filter(None, map(dict.get, records, repeat("metrics")))))


def problem(record: Any) -> str | None:
    """Why ``record`` does not fit a run log (None: it fits, or it is an event the views do not read).

    A record's shape (its fields and their types) is judged once: a run's records have a handful of shapes.
    What the shape cannot tell -- whether its numbers are in range, what its lists hold -- is checked on each.
    """
    if type(record) is not dict:
        return f"a JSON {_kind(record)}, not an object"
    shape = (tuple(record), tuple(map(type, record.values())))
    verdict = _SHAPES.get(shape)
    if verdict is None:
        if len(_SHAPES) > 10_000:  # a log of endlessly varied records: keep the memory bounded
            _SHAPES.clear()
        verdict = _SHAPES[shape] = _judge(record)
    why, numbers, containers, objects = verdict
    if why is not None:
        return why
    if numbers is not None:
        values = numbers(record)
        if min(values) < LOWEST or max(values) > HIGHEST:
            return f"{record['event']} with a number out of range ({_out_of_range(values)!r})"
    for key, check in containers:
        value = record[key]
        if value and not check(value):
            return f"{record['event']} whose {key} holds {_CONTAINS[check]}"
    for key, spec in objects:
        why = _object_problem(record[key], spec)
        if why is not None:
            return f"{record['event']} whose {key}.{why}"
    return None


# (what is wrong with the shape; its numbers, got as one tuple; its lists and objects, with their checks; its
# objects with fields of their own, with their specs)
Verdict = tuple[str | None, Callable[[dict[str, Any]], tuple[Any, ...]] | None,
                tuple[tuple[str, Callable[[Any], bool]], ...], tuple[tuple[str, Spec], ...]]
_SHAPES: dict[tuple[tuple[str, ...], tuple[type, ...]], Verdict] = {}


def _judge(record: dict[str, Any]) -> Verdict:
    """A shape's verdict: what is wrong with it, or what to check on each record of it."""
    event = record.get("event")
    if type(event) is not str:
        return f"its event is {_kind(event)}, not text", None, (), ()
    spec = SPECS.get(event)
    if spec is None:
        return None, None, (), ()
    for key, value in record.items():
        kinds = spec.fields.get(key)
        if kinds is not None and type(value) not in kinds:
            return f"{event} whose {key} is {_kind(value)}", None, (), ()
    missing = [key for key in spec.required if key not in record]
    if missing:
        return f"{event} without {missing[0]}", None, (), ()
    numbers = [key for key in spec.numbers if type(record.get(key)) in NUMBER]
    getter = itemgetter(*numbers, numbers[0]) if numbers else None  # (one key alone would not give a tuple)
    objects = tuple((key, inner) for key, inner in spec.objects.items() if type(record.get(key)) is dict)
    return None, getter, _containers(record, spec), objects


def _containers(record: dict[str, Any], spec: Spec) -> tuple[tuple[str, Callable[[Any], bool]], ...]:
    """The lists and mappings of a record, each with the check of what it holds."""
    lists = ((spec.int_lists, _all_ints), (spec.text_lists, _all_text), (spec.number_lists, _all_numbers),
             (spec.dependency_lists, _all_dependencies))
    found = tuple((key, check) for keys, check in lists for key in keys if type(record.get(key)) is list)
    return found + tuple((key, _MAPPINGS[kinds]) for key, kinds in spec.mappings.items()
                         if type(record.get(key)) is dict)


def _object_problem(value: dict[str, Any], spec: Spec) -> str | None:
    """What does not fit in an object inside a record (``sockets is text``), field by field: such records are
    a few per run (one per machine), so there is no shape to remember."""
    for key, item in value.items():
        kinds = spec.fields.get(key)
        if kinds is not None and type(item) not in kinds:
            return f"{key} is {_kind(item)}"
    for key in spec.numbers:
        item = value.get(key)
        if type(item) in NUMBER and not LOWEST <= item <= HIGHEST:
            return f"{key} is out of range ({item!r})"
    for key, check in _containers(value, spec):
        if value[key] and not check(value[key]):
            return f"{key} holds {_CONTAINS[check]}"
    return None


def _all_ints(values: list[Any]) -> bool:
    return set(map(type, values)) <= {int} and LOWEST <= min(values) and max(values) <= HIGHEST


def _all_text(values: list[Any]) -> bool:
    return set(map(type, values)) <= {str}


def _all_dependencies(values: list[Any]) -> bool:
    """An ``after`` list: each dependency an object with an in-range ``seq`` and a ``work_relpath`` (text)."""
    return all(type(v) is dict and type(v.get("seq")) is int and LOWEST <= v["seq"] <= HIGHEST
               and type(v.get("work_relpath")) in (str, _NONE) for v in values)


def _all_numbers(values: list[Any]) -> bool:
    """(Each compared: min() and max() would let a NaN through. Such lists are short: a load average.)"""
    return set(map(type, values)) <= {int, float} and all(LOWEST <= v <= HIGHEST for v in values)


def _to_ints(mapping: dict[str, Any]) -> bool:
    values = list(mapping.values())
    return set(map(type, values)) <= {int} and LOWEST <= min(values) and max(values) <= HIGHEST


def _to_numbers(mapping: dict[str, Any]) -> bool:
    values = list(mapping.values())
    return set(map(type, values)) <= {int, float} and LOWEST <= min(values) and max(values) <= HIGHEST


def _to_metrics(mapping: dict[str, Any]) -> bool:
    values = list(mapping.values())
    return set(map(type, values)) <= {int, float} and all(v - v == 0 for v in values)  # (no inf, no nan)


def _to_int_lists(mapping: dict[str, Any]) -> bool:
    return all(type(v) is list and (not v or _all_ints(v)) for v in mapping.values())


_MAPPINGS = {INT: _to_ints, NUMBER: _to_numbers, LIST: _to_int_lists, METRIC_VALUES: _to_metrics}
_CONTAINS = {_all_ints: "something else than numbers", _all_text: "something else than text",
             _all_dependencies: "something else than dependencies (seq, work_relpath)",
             _all_numbers: "something else than numbers",
             _to_ints: "something else than numbers", _to_numbers: "something else than numbers",
             _to_int_lists: "something else than lists of numbers", _to_metrics: "something else than numbers"}


def _out_of_range(numbers: list[Any]) -> Any:
    return next((v for v in numbers if not LOWEST <= v <= HIGHEST), numbers[0])


def _kind(value: Any) -> str:
    names = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "text",
             list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def skipped_text(path: str, problems: list[tuple[int, str]], shown: int = 3) -> str:
    """The one warning about the records of a log that were skipped: how many, and the first few, by line."""
    if len(problems) == 1:
        line, why = problems[0]
        return f"parallux: {path}: line {line} skipped, it does not fit a run log: {why}"
    named = ", ".join(f"line {line} ({why})" for line, why in problems[:shown])
    return (f"parallux: {path}: {len(problems)} records skipped that do not fit a run log: {named}"
            + (", ..." if len(problems) > shown else ""))
