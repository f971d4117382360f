"""A synthetic run log of any size, shaped like a real campaign, for the report tests and bench/report.py.

Four runners (one local with 16 slots, one SSH host with a 64-core pool whose commands lease 2 cores each,
two SSH hosts with 32 slots), log-normal durations, about 2% failures (a third of them retried), a few
timeouts and errors. Commands are placed as a scheduler would (each on the slot that frees first), so the
log is consistent: no slot ever runs two commands at once. The events are those ``parallux._runlog``
writes, in time order.
"""

from __future__ import annotations

import heapq
import json
import math
import random
import socket
from pathlib import Path
from typing import Any

RUNNERS = [
    {"name": "local", "kind": "local", "host": None, "max_jobs": 16, "core_pool": None, "threads": 1},
    {"name": "big", "kind": "ssh", "host": "big.lab", "max_jobs": 32, "core_pool": list(range(64)), "threads": 2},
    {"name": "node-a", "kind": "ssh", "host": "node-a.lab", "max_jobs": 32, "core_pool": None, "threads": 1},
    {"name": "node-b", "kind": "ssh", "host": "node-b.lab", "max_jobs": 32, "core_pool": None, "threads": 1},
]


# The same machines with fewer slots: a picture of a run whose lanes are tall enough to see one by one.
SMALL_RUNNERS = [dict(r, max_jobs=n, core_pool=list(range(2 * n)) if r["core_pool"] else None)
                 for r, n in zip(RUNNERS, (4, 8, 6, 6))]


def write_synthetic_log(path: Path, commands: int, seed: int = 1, start: float = 1_700_000_000.0,
                        config: str = "/home/perf/campaign.py",
                        runners: list[dict[str, Any]] | None = None) -> dict[str, int]:
    """Write the log; returns counts: commands, attempts, and per final status."""
    runners = runners or RUNNERS
    rng = random.Random(seed)
    host = socket.gethostname()
    events: list[tuple[float, int, dict[str, Any]]] = []
    order = 0

    def emit(when: float, record: dict[str, Any]) -> None:
        nonlocal order
        order += 1
        events.append((when, order, {"event": record.pop("event"), "time": round(when, 6), **record}))

    slots = []  # (free at, runner index, slot)
    for index, runner in enumerate(runners):
        for slot in range(runner["max_jobs"]):
            heapq.heappush(slots, (start + 0.5, index, slot))
    counts: dict[str, int] = {"commands": commands, "attempts": 0}
    for seq in range(1, commands + 1):
        name = f"bench_{seq:06d}"
        emit(start + 0.1 + seq * 1e-6, {"event": "queued", "seq": seq, "name": name,
                                        "command": f"./sim --trace traces/{seq % 977}.gz --seed {seq}",
                                        "work_relpath": f"sim/{seq:06d}"})
        attempt = 0
        not_before = 0.0  # a retry starts after the attempt it repeats ended
        while True:
            free_at, index, slot = heapq.heappop(slots)
            runner = runners[index]
            cores = [2 * slot, 2 * slot + 1] if runner["core_pool"] else []
            duration = math.exp(rng.gauss(math.log(20.0), 0.8))
            roll = rng.random()
            status, returncode = ("failed", 1) if roll < 0.02 else ("timeout", None) if roll < 0.023 else \
                ("error", None) if roll < 0.025 else ("ok", 0)
            begin = max(free_at, not_before) + rng.uniform(0.0005, 0.003)
            end = begin + duration
            where = {"seq": seq, "name": name, "runner": runner["name"], "host": runner["host"] or host,
                     "work_dir": f"/scratch/parallux/sim/{seq:06d}", "cores": cores,
                     "numa_node": (0 if 2 * slot < len(runner["core_pool"]) // 2 else 1) if cores else None,
                     "attempt": attempt}
            emit(begin - 0.0004, {"event": "started", **where})
            outcome = {"status": status, "returncode": returncode, "start": round(begin, 6), "end": round(end, 6),
                       "duration": round(duration, 6), "user_seconds": round(duration * 0.93, 4),
                       "system_seconds": round(duration * 0.02, 4), "max_rss_kb": rng.randint(20_000, 900_000),
                       "signal": 15 if status == "timeout" else None,
                       "error": "connection to node lost" if status == "error" else None, "resumed": False}
            if status != "ok":
                outcome["stderr_tail"] = f"sim: trace {seq % 977}: checksum mismatch at record {seq * 7}\n"
            counts["attempts"] += 1
            heapq.heappush(slots, (end, index, slot))
            retry = status != "ok" and attempt == 0 and rng.random() < 0.33
            emit(end + 0.0002, {"event": "retrying" if retry else "finished", **where, **outcome})
            if not retry:
                counts[status] = counts.get(status, 0) + 1
                break
            attempt += 1
            not_before = end + 0.001
    events.sort(key=lambda e: (e[0], e[1]))
    end_time = events[-1][0] + 0.01
    finals = {k: v for k, v in counts.items() if k not in ("commands", "attempts")}
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"event": "run_started", "schema": 2, "run_id": "20231114-221320-5yn7h3",
                            "config": config, "argv": ["size=ref"], "time": start, "pid": 1, "host": host,
                            "python": "3.11.2", "parallux": "0.1.0", "cwd": "/home/perf", "log": str(path)}) + "\n")
        for runner in runners:
            f.write(json.dumps({"event": "runner", "time": start + 0.4, "name": runner["name"],
                                "kind": runner["kind"], "host": runner["host"] or host,
                                "max_jobs": runner["max_jobs"], "logical_cores": 64,
                                "core_pool": runner["core_pool"],
                                "numa_nodes": {"0": runner["core_pool"][:len(runner["core_pool"]) // 2],
                                               "1": runner["core_pool"][len(runner["core_pool"]) // 2:]}
                                if runner["core_pool"] else None}) + "\n")
        for _, _, record in events:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
        f.write(json.dumps({"event": "run_finished", "time": end_time, "counts": finals,
                            "elapsed": round(end_time - start, 3), "retries": counts["attempts"] - commands,
                            "resumed": 0, "busy_seconds": {}, "started": commands, "exit_status": 1 if
                            len(finals) > 1 else 0, "halted": None}) + "\n")
    return counts


# -- benchmarks ---------------------------------------------------------------------------------------------


def write_benchmark_log(path: Path, benchmarks: list[dict[str, Any]], plain: list[dict[str, Any]] | None = None,
                        order: tuple[str, int | None] = ("interleave", None), run_id: str = "20240301-101500-b3nch1",
                        start: float = 1_709_287_000.0, max_jobs: int = 4, host: str | None = None) -> None:
    """A run log of benchmarks as parallux writes it (SPEC 16): a ``benchmark`` event each, one ``order``
    event, then every execution as its own command (``bench``, ``repetition``; work dirs ``<key>/w1``,
    ``<key>/r1``), queued round by round (warm-ups first), run on ``max_jobs`` slots of one local runner.

    Each benchmark is ``{"key", "name", "wall": [seconds per repetition], "cpu", "memory" (optional lists,
    else derived from wall), "metrics": {name: [values]} (optional), "declared": [names] (default: the
    metrics' names), "status": [per repetition] (default ok), "warmup": K (default 0)}``. ``plain``: commands
    that are no benchmark, ``{"name", "work_relpath", "wall", "status"}``.
    """
    host = host or socket.gethostname()
    records: list[dict[str, Any]] = []
    clock = [start + 0.5]

    def emit(record: dict[str, Any], when: float | None = None) -> None:
        records.append({"event": record.pop("event"), "time": round(clock[0] if when is None else when, 6),
                        **record})

    emit({"event": "runner", "name": "local", "kind": "local", "host": host, "workspace": "/scratch/ws",
          "login": [], "max_jobs": max_jobs, "logical_cores": 8, "core_pool": None, "numa_nodes": None})
    emit({"event": "order", "mode": order[0], "seed": order[1]})
    executions = []  # (round, benchmark index, repetition label, position among the measured ones or None)
    for index, bench in enumerate(benchmarks):
        declared = bench.get("declared", sorted(bench.get("metrics", {})))
        emit({"event": "benchmark", "key": bench["key"], "name": bench["name"], "command": f"./bench {bench['name']}",
              "repeat": len(bench["wall"]), "warmup": bench.get("warmup", 0), "metrics": declared})
        warmup = bench.get("warmup", 0)
        executions += [(k, index, f"w{k + 1}", None) for k in range(warmup)]
        executions += [(warmup + k, index, f"r{k + 1}", k) for k in range(len(bench["wall"]))]
    executions.sort(key=lambda e: (e[0], e[1]))  # interleaved: round by round, benchmarks in their order
    slots = [start + 1.0] * max_jobs
    seq = 0
    for _, index, label, position in executions:
        bench = benchmarks[index]
        seq += 1
        wall = bench["wall"][position] if position is not None else bench["wall"][0]
        status = (bench.get("status") or ["ok"] * len(bench["wall"]))[position] if position is not None else "ok"
        metrics = {name: values[position if position is not None else 0]
                   for name, values in bench.get("metrics", {}).items()}
        cpu = bench["cpu"][position] if "cpu" in bench and position is not None else wall * 0.9
        memory = bench["memory"][position] if "memory" in bench and position is not None else 10_000 + index
        _execution(emit, slots, seq, bench["name"], f"./bench {bench['name']}", f"{bench['key']}/{label}", status,
                   wall, cpu, memory, metrics, host, {"bench": bench["key"], "repetition": label}, start)
    for command in plain or []:
        seq += 1
        _execution(emit, slots, seq, command["name"], f"./{command['name']}", command["work_relpath"],
                   command.get("status", "ok"), command["wall"], command["wall"] * 0.9, 5_000, {}, host, {}, start)
    records.sort(key=lambda r: r["time"])
    end = max(slots) + 0.01
    counts: dict[str, int] = {}
    for record in records:
        if record["event"] == "finished":
            counts[record["status"]] = counts.get(record["status"], 0) + 1
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"event": "run_started", "schema": 2, "run_id": run_id, "config": "/home/perf/bench.py",
                            "argv": [], "time": start, "pid": 1, "host": host, "python": "3.11.2",
                            "parallux": "0.1.0", "cwd": "/home/perf", "log": str(path)}) + "\n")
        for record in records:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
        f.write(json.dumps({"event": "run_finished", "time": end, "counts": counts, "elapsed": end - start,
                            "retries": 0, "resumed": 0, "busy_seconds": {}, "started": seq,
                            "exit_status": 0 if set(counts) <= {"ok"} else 1, "halted": None}) + "\n")


def _execution(emit: Any, slots: list[float], seq: int, name: str, command: str, relpath: str, status: str,
               wall: float, cpu: float, memory: int, metrics: dict[str, float], host: str,
               bench: dict[str, str], start: float) -> None:
    """One command's queued, started and finished events, on the slot that frees first."""
    slot = min(range(len(slots)), key=slots.__getitem__)
    begin = slots[slot] + 0.001
    slots[slot] = begin + wall
    emit({"event": "queued", "seq": seq, "name": name, "command": command, "work_relpath": relpath,
          "work_generated": False, **bench}, when=start + 0.2 + seq * 1e-6)
    where = {"seq": seq, "name": name, "runner": "local", "host": host, "work_dir": f"/scratch/ws/{relpath}",
             "cores": [], "numa_node": None, "attempt": 0}
    emit({"event": "started", **where}, when=begin - 0.0004)
    outcome = {"status": status, "returncode": 0 if status == "ok" else 1, "start": round(begin, 6),
               "end": round(begin + wall, 6), "duration": round(wall, 6), "user_seconds": round(cpu * 0.95, 6),
               "system_seconds": round(cpu * 0.05, 6), "max_rss_kb": memory, "signal": None, "error": None,
               "resumed": False}
    if metrics:
        outcome["metrics"] = metrics
    emit({"event": "finished", **where, **outcome}, when=begin + wall + 0.0002)


# -- machines, probes, noise, the config (SPEC 17; /work/wt/ENV-CONTRACT.md) ----------------------------------


def machine_environment(**changes: Any) -> dict[str, Any]:
    """A machine's ``environment`` as the launcher reports it (a two-socket Xeon), with ``changes``."""
    environment: dict[str, Any] = {
        "hostname": "vm", "os": "Debian GNU/Linux 12 (bookworm)",
        "kernel": "6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)", "arch": "x86_64",
        "cpu_model": "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", "microcode": "0x5003604", "sockets": 2,
        "cores_per_socket": 20, "threads_per_core": 2, "logical_cpus": 80, "numa_nodes": 2,
        "memory_bytes": 192 << 30, "cpufreq_driver": "intel_pstate", "governors": {"performance": list(range(80))},
        "min_khz": 1_000_000, "max_khz": 3_900_000, "turbo": "off", "isolated": None, "nohz_full": None,
        "load": [0.12, 0.3, 0.25], "cpus": list(range(80)), "parallux": "0.1.0", "python": "3.11.2"}
    environment.update(changes)
    return environment


def add_environment(path: Path, machines: list[dict[str, Any]], probes: list[dict[str, Any]] | None = None,
                    noise: list[dict[str, Any]] | None = None, config_sha256: str | None = None,
                    git: dict[str, Any] | None = None) -> None:
    """Give a written log what parallux records about its machines and config: ``run_started`` gains
    ``config_sha256`` and ``git``; after it, a ``machine`` event per machine (``{"label", "runners",
    "environment", "load_end", "boot_id", "machine_id"}``), its ``probe`` events (``{"name", "command",
    "machine", "runner", "returncode", "output", "truncated", "error"}``, missing ones defaulted) and its
    ``noise`` events (``{"machine", "check", "message"}``); a ``machine_load`` each before ``run_finished``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first.update(config_sha256=config_sha256, git=git)
    when = first["time"] + 0.3
    added = []
    for machine in machines:
        added.append({"event": "machine", "time": when, "label": machine["label"],
                      "runners": machine.get("runners", ["local"]), "boot_id": machine.get("boot_id", "b00t"),
                      "machine_id": machine.get("machine_id", "m4ch1ne"), "environment": machine["environment"]})
    for probe in probes or []:
        added.append({"event": "probe", "time": when, "runner": "local", "returncode": 0, "truncated": False,
                      "error": None, **probe})
    for finding in noise or []:
        added.append({"event": "noise", "time": when, **finding})
    last = json.loads(lines[-1])
    loads = [{"event": "machine_load", "time": last["time"] - 0.001, "label": m["label"], "load": m.get("load_end")}
             for m in machines]
    body = lines[1:-1] if last.get("event") == "run_finished" else lines[1:]
    tail = lines[-1:] if last.get("event") == "run_finished" else []
    text = [json.dumps(first), *map(json.dumps, added), *body, *map(json.dumps, loads), *tail]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
