"""What a run recorded of the machines it ran on, of its probes and of its config (SPEC 17): ``show``'s
Machines block and its JSON, the report's Machines section, and what ``compare`` compares (``differences``).

A run log says it in a few records (``machine``, ``machine_load``, ``probe``, ``noise``; ``config_sha256`` and
``git`` in ``run_started``), gathered here per machine. A log written before parallux recorded them has none:
then there is nothing to show, and nothing is said.
"""

from __future__ import annotations

from typing import Any

from .._printable import printable
from .._sizes import format_size
from .output import compress_cores
from .records import Run

PROBE_FIELDS = ("command", "returncode", "output", "truncated", "error")


def recorded(run: Run) -> bool:
    """Did the run record anything of its machines or config (a log of parallux before SPEC 17 did not)?"""
    return bool(run.machines) or "config_sha256" in run.info or "git" in run.info


def machines_of(run: Run) -> list[dict[str, Any]]:
    """Each machine, in the order the run met it: ``{label, runners, boot_id, machine_id, environment,
    load_end, probes: {name: {command, returncode, output, truncated, error}}, noise: [messages]}``."""
    machines: dict[str, dict[str, Any]] = {}
    for record in run.machines:
        event = record["event"]
        if event == "machine_load":  # (the end of a machine whose record was skipped: nothing to add it to)
            if record["label"] in machines:
                machines[record["label"]]["load_end"] = record.get("load")
            continue
        machine = _machine(machines, record["label"] if event == "machine" else record.get("machine") or "?")
        if event == "machine":
            runners = machine["runners"]
            runners += [r for r in record.get("runners") or [] if r not in runners]  # (a later record: more)
            machine.update(boot_id=record.get("boot_id"), machine_id=record.get("machine_id"),
                           environment=record.get("environment"))
        elif event == "probe":
            machine["probes"][record["name"]] = {k: record.get(k) for k in PROBE_FIELDS}
        else:
            machine["noise"].append(record["message"])
    return list(machines.values())


def _machine(machines: dict[str, dict[str, Any]], label: str) -> dict[str, Any]:
    found = machines.get(label)
    if found is None:
        found = machines[label] = {"label": label, "runners": [], "boot_id": None, "machine_id": None,
                                   "environment": None, "load_end": None, "probes": {}, "noise": []}
    return found


def config_of(run: Run) -> dict[str, Any]:
    """The config as run: ``{path, sha256, git: {commit, dirty, root} | null}``."""
    return {"path": run.info.get("config"), "sha256": run.info.get("config_sha256"), "git": run.info.get("git")}


# -- as text (show) ------------------------------------------------------------------------------------------


def machines_text(run: Run) -> list[str]:
    """show's Machines block: a line per machine, its probes and noise findings under it, then the config's
    line; no line at all for a run that recorded none of these."""
    if not recorded(run):
        return []
    lines = [""]
    machines = machines_of(run)
    if machines:
        lines.append("machines")
    for machine in machines:
        lines.append(f"  {machine['label']}: {machine_line(machine)}")
        lines += [f"    probe {name}: {probe_line(probe)}" for name, probe in machine["probes"].items()]
        lines += [f"    noise: {message}" for message in machine["noise"]]
    lines.append(f"config: {config_line(config_of(run))}")
    return list(map(printable, lines))  # a machine's text came from there: any text


def machine_line(machine: dict[str, Any]) -> str:
    """``cpu model, 2 sockets x 20 cores x 2 threads, 192 GiB, kernel K, governor G (min-max MHz), turbo off,
    load a/b/c -> x/y/z (runners a, b)``: what is known of it."""
    environment = machine["environment"]
    if environment is None:
        facts = "its environment was not recorded"
    else:
        kernel = environment.get("kernel")
        turbo = environment.get("turbo")
        parts = [environment.get("cpu_model"), topology_text(environment), _memory(environment.get("memory_bytes")),
                 f"kernel {kernel.split(' ', 1)[0]}" if kernel else None, frequency_text(environment),
                 f"turbo {turbo}" if turbo else None, load_text(environment.get("load"), machine["load_end"])]
        facts = ", ".join(part for part in parts if part)
    runners = machine["runners"]
    return facts + (f" (runner{'s' if len(runners) > 1 else ''} {', '.join(runners)})" if runners else "")


def topology_text(environment: dict[str, Any]) -> str | None:
    counts = [environment.get(k) for k in ("sockets", "cores_per_socket", "threads_per_core")]
    if counts == [None, None, None]:
        return None
    return " x ".join(f"{'?' if n is None else n} {word}{'' if n == 1 else 's'}"
                      for n, word in zip(counts, ("socket", "core", "thread")))


def _memory(count: int | None) -> str | None:
    return format_size(count) if count is not None else None


def governors_text(governors: dict[str, list[int]], cpus: bool = False) -> str:
    """``performance``, or, when the CPUs differ (or ``cpus``), ``performance on CPUs 2-3, powersave on CPUs 0-1``."""
    if len(governors) == 1 and not cpus:
        return next(iter(governors))
    return ", ".join(f"{name} on CPUs {compress_cores(cpus) or 'none'}" for name, cpus in sorted(governors.items()))


def frequency_text(environment: dict[str, Any]) -> str | None:
    governors = environment.get("governors")
    low, high = environment.get("min_khz"), environment.get("max_khz")
    span = None if low is None and high is None else f"{_mhz(low)}-{_mhz(high)} MHz"
    if not governors:
        return f"frequency {span}" if span else None
    word = "governor" if len(governors) == 1 else "governors"
    return f"{word} {governors_text(governors)}" + (f" ({span})" if span else "")


def _mhz(khz: int | None) -> str:
    return "?" if khz is None else f"{khz / 1000:g}"


def load_text(start: list[float] | None, end: list[float] | None) -> str | None:
    """``load 0.12/0.30/0.25 -> 1.50/0.80/0.40`` (at the start, at the end), ``?`` where one is not known."""
    if not start and not end:
        return None
    text = "/".join(f"{value:.2f}" for value in start) if start else "?"
    return f"load {text}" + (" -> " + "/".join(f"{value:.2f}" for value in end) if end else "")


def probe_line(probe: dict[str, Any]) -> str:
    """The first line of its output (after its exit status when that is not 0), or why it could not run."""
    if probe["error"] is not None:
        return f"could not run: {probe['error']}"
    first = (probe["output"] or "").strip("\r\n").split("\n", 1)[0].rstrip("\r") or "(no output)"
    returncode = probe["returncode"]
    return (f"exit {returncode}: " if returncode not in (0, None) else "") + first


def config_line(config: dict[str, Any]) -> str:
    """``PATH sha256 0123abcd... git 1a2b3c4 (dirty)``."""
    sha = config["sha256"]
    text = f"{config['path'] or '?'} sha256 {sha[:8] + '...' if sha else 'unknown'}"
    git = config["git"]
    if git is None:
        return text + " (not in a git work tree)"
    commit, dirty = git.get("commit"), git.get("dirty")
    return (text + (f" git {commit[:7]}" if commit else " git (no commit yet)")
            + ("" if dirty is None else " (dirty)" if dirty else " (clean)"))


# -- as a table (the report) ------------------------------------------------------------------------------------


def facts_table(machines: list[dict[str, Any]]) -> list[list[Any]]:
    """The report's table of machines: a row per fact, ``[name, [its text on each machine]]`` (a column per
    machine: a handful of machines have twenty facts each). The whole kernel and each governor's CPUs here."""
    rows = [[name, [_fact(getter, m) for m in machines]] for name, getter in _FACTS]
    return [row for row in rows if any(text != "-" for text in row[1])]


def _fact(getter: Any, machine: dict[str, Any]) -> str:
    environment = machine["environment"]
    if environment is None:
        return "-"
    text = getter(environment, machine)
    return "-" if text is None or text == "" else str(text)


def _cpus(key: str) -> Any:
    return lambda e, m: None if e.get(key) is None else compress_cores(e[key]) or "none"


_FACTS: list[tuple[str, Any]] = [
    ("hostname", lambda e, m: e.get("hostname")), ("machine id", lambda e, m: m["machine_id"]),
    ("CPU", lambda e, m: e.get("cpu_model")), ("microcode", lambda e, m: e.get("microcode")),
    ("topology", lambda e, m: topology_text(e)), ("logical CPUs", lambda e, m: e.get("logical_cpus")),
    ("NUMA nodes", lambda e, m: e.get("numa_nodes")), ("memory", lambda e, m: _memory(e.get("memory_bytes"))),
    ("OS", lambda e, m: e.get("os")), ("kernel", lambda e, m: e.get("kernel")), ("arch", lambda e, m: e.get("arch")),
    ("frequency driver", lambda e, m: e.get("cpufreq_driver")),
    ("governor", lambda e, m: governors_text(e["governors"], cpus=True) if e.get("governors") else None),
    ("frequency", lambda e, m: None if e.get("min_khz") is None and e.get("max_khz") is None
     else f"{_mhz(e.get('min_khz'))}-{_mhz(e.get('max_khz'))} MHz"),
    ("turbo", lambda e, m: e.get("turbo")), ("CPUs measured", _cpus("cpus")), ("isolated CPUs", _cpus("isolated")),
    ("nohz_full CPUs", _cpus("nohz_full")),
    ("load (1/5/15 min)", lambda e, m: (load_text(e.get("load"), m["load_end"]) or "")[len("load "):]),
    ("parallux, Python", lambda e, m: f"{e.get('parallux') or '?'}, Python {e.get('python') or '?'}"),
    ("runners", lambda e, m: ", ".join(m["runners"])),
]
