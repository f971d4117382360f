"""``parallux runs|show|report|export|compare``: looking at runs after (or while) they go.

``parallux WORD ...`` with one of these words first runs the subcommand; a config file that happens to be
named like one is run as ``parallux ./runs``. Every subcommand reads run logs only (``history``), so it
needs no runner, and works on a run still going from a second terminal.
"""

from __future__ import annotations

import argparse
import csv
import gc
import io
import json
import math
import os
import sys
import time
from typing import IO, Any, Callable, Iterable, Sequence

from . import jsonl
from . import SUBCOMMANDS
from .._durations import format_seconds
from .._exit import EXIT_FAILED, EXIT_OK, EXIT_SIGINT, EXIT_USAGE
from .history import RunEntry, list_runs, resolve_run
from .reader import load_run
from .records import CommandRecord, HistoryError, Run

FORMATS = ("table", "csv", "tsv", "json")

# The fields of a command row, in order (show's csv/tsv/json, export --csv).
COMMAND_FIELDS = ("seq", "name", "runner", "host", "cores", "numa_node", "status", "returncode", "signal",
                  "start", "end", "duration", "user_seconds", "system_seconds", "cpu_seconds", "max_rss_kb",
                  "attempts", "resumed", "work_relpath", "work_dir", "command", "error")
TABLE_HEADERS = ("NAME", "RUNNER", "HOST", "CORES", "STATUS", "EXIT", "START", "DURATION", "CPU", "PEAK RSS",
                 "ATTEMPTS", "WORK DIR")


# -- parsers --------------------------------------------------------------------------------------------


def _parser(name: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=f"parallux {name}", description=description, allow_abbrev=False)


def _add_run(parser: argparse.ArgumentParser, config: bool = True) -> None:
    parser.add_argument("run", metavar="RUN", nargs="?",
                        help="a run id, a unique prefix of one, or a run log's path (default: the latest run "
                             "that started commands)")
    if config:
        parser.add_argument("--config", metavar="PATH", help="only runs of this config (and its latest run "
                                                              "as the default RUN)")


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="table (default): a summary then the rows; csv/tsv: the rows, a header first; "
                             "json: one object")


def build_parsers() -> dict[str, argparse.ArgumentParser]:
    runs = _parser("runs", "List recent runs that started commands, newest first.")
    runs.add_argument("--config", metavar="PATH", help="only the runs of this config")
    runs.add_argument("-n", type=positive, metavar="N", help="show at most N runs (default 20; with --all: every run)")
    runs.add_argument("--all", action="store_true", help="every run, also those that started no command "
                                                         "(config errors)")
    _add_format(runs)

    show = _parser("show", "One run's summary and a row per command.")
    _add_run(show)
    show.add_argument("--failed", action="store_true", help="only commands that did not end ok")
    show.add_argument("--slowest", type=positive, metavar="N", help="only the N longest commands, longest first")
    _add_format(show)

    report = _parser("report", "Write one self-contained HTML report of a run (opens from disk, no network).")
    _add_run(report)
    report.add_argument("-o", "--output", metavar="FILE.html",
                        help="where to write it (default: ./<run id>.html)")

    export = _parser("export", "Export a run as a Chrome trace (Perfetto), JUnit XML or CSV.")
    _add_run(export)
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--trace", metavar="FILE.json", help="Chrome trace event format (Perfetto UI, "
                                                               "chrome://tracing); - for stdout")
    target.add_argument("--junit", metavar="FILE.xml", help="JUnit XML, one testcase per command; - for stdout")
    target.add_argument("--csv", metavar="FILE", help="one row per command; - for stdout")

    compare = _parser("compare", "Compare two runs command by command (matched by work_relpath).")
    compare.add_argument("run_a", metavar="RUN_A", help="the baseline run")
    compare.add_argument("run_b", metavar="RUN_B", help="the run compared with it")
    compare.add_argument("--config", metavar="PATH", help="look the run ids up among this config's runs")
    _add_format(compare)
    parsers = {"runs": runs, "show": show, "report": report, "export": export, "compare": compare}
    assert tuple(parsers) == SUBCOMMANDS
    return parsers


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


# -- entry point -----------------------------------------------------------------------------------------


def main(argv: Sequence[str]) -> int:
    # A short process that builds a few hundred thousand objects with no cycles among them (a run's events):
    # the cyclic collector would only walk them over and over (a third of the time at 100,000 commands).
    gc.disable()
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="surrogateescape")  # undecodable file names, printed as they were
    name, rest = argv[0], list(argv[1:])
    parser = build_parsers()[name]
    try:
        args = parser.parse_args(rest)
    except SystemExit as exc:
        return int(exc.code or 0) if exc.code in (0, None) else EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = globals()[f"command_{name}"]
    try:
        return handler(args)
    except HistoryError as exc:
        print(f"parallux {name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `parallux show | head`: the reader has seen enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        print(f"parallux {name}: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_SIGINT


def _load(spec: str | None, config: str | None) -> Run:
    return load_run(resolve_run(spec, config))


# -- runs ------------------------------------------------------------------------------------------------


def command_runs(args: argparse.Namespace) -> int:
    limit = args.n if args.n is not None else (None if args.all else 20)
    entries = list_runs(args.config, every=args.all, limit=limit)
    if args.format == "json":
        _print_json([e.as_dict() for e in entries])
        return EXIT_OK
    rows = [_entry_row(e) for e in entries]
    headers = ("RUN", "START", "DURATION", "STATE", "EXIT", "COMMANDS", "CONFIG")
    if args.format in ("csv", "tsv"):
        _write_delimited(sys.stdout, ["run_id", "start", "duration", "state", "exit_status", "counts", "config"],
                         ([e.run_id, e.start, e.duration, e.state, (e.finished or {}).get("exit_status"),
                           _counts_text((e.finished or {}).get("counts")), e.info.get("config")] for e in entries),
                         args.format)
        return EXIT_OK
    if not entries:
        where = f" of {args.config}" if args.config else ""
        print(f"no runs{where} yet" + ("" if args.all else " that started commands (--all lists every run)"))
        return EXIT_OK
    _print_table(headers, rows)
    return EXIT_OK


def _entry_row(entry: RunEntry) -> list[str]:
    finished = entry.finished or {}
    exit_status = finished.get("exit_status")
    return [entry.run_id, _clock(entry.start, date=True), _seconds(entry.duration), entry.state,
            "-" if exit_status is None else str(exit_status), _counts_text(finished.get("counts")) or "-",
            _short_path(entry.info.get("config"))]


# -- show ------------------------------------------------------------------------------------------------


def command_show(args: argparse.Namespace) -> int:
    run = _load(args.run, args.config)
    commands = select(run, failed=args.failed, slowest=args.slowest)
    if args.format == "json":
        write_json_rows(sys.stdout, {"run": run.summary()}, "commands", (command_row(run, c) for c in commands))
    elif args.format in ("csv", "tsv"):
        write_rows(sys.stdout, run, commands, args.format)
    else:
        print(summary_text(run))
        if commands:
            print()
            now = time.time()
            _print_table(TABLE_HEADERS, [_table_row(c, now) for c in commands])
        elif args.failed:
            print("\nno command failed")
    return EXIT_OK


def select(run: Run, failed: bool = False, slowest: int | None = None) -> list[CommandRecord]:
    commands = run.commands
    if failed:
        commands = [c for c in commands if c.failed]
    if slowest is not None:
        commands = sorted((c for c in commands if c.duration is not None), key=lambda c: -(c.duration or 0.0))
        commands = commands[:slowest]
    return list(commands)


def command_row(run: Run, command: CommandRecord) -> dict[str, Any]:
    """One command as a flat mapping of COMMAND_FIELDS (JSON-able)."""
    last = command.last
    if last is None:  # queued, never started
        return {**dict.fromkeys(COMMAND_FIELDS), "seq": command.seq, "name": command.name, "cores": [],
                "status": command.status, "attempts": 0, "resumed": False, "work_relpath": command.work_relpath,
                "command": command.command}
    return {"seq": command.seq, "name": command.name, "runner": last.runner,
            "host": last.host or (run.runners.get(last.runner or "") or {}).get("host"), "cores": last.cores,
            "numa_node": last.numa_node, "status": command.status, "returncode": last.returncode,
            "signal": last.signal, "start": last.start, "end": last.end, "duration": _round(last.duration),
            "user_seconds": last.user_seconds, "system_seconds": last.system_seconds,
            "cpu_seconds": _round(command.cpu_seconds), "max_rss_kb": last.max_rss_kb,
            "attempts": len(command.attempts), "resumed": command.resumed, "work_relpath": command.work_relpath,
            "work_dir": last.work_dir, "command": command.command, "error": last.error}


def write_rows(stream: IO[str], run: Run, commands: Iterable[CommandRecord], fmt: str = "csv") -> None:
    rows = (command_row(run, c) for c in commands)
    _write_delimited(stream, list(COMMAND_FIELDS), ([_cell(row[k], k) for k in COMMAND_FIELDS] for row in rows), fmt)


def _cell(value: Any, key: str) -> Any:
    if key == "cores":
        return ",".join(map(str, value))
    if value is None:
        return ""
    return value


def _table_row(command: CommandRecord, now: float) -> list[str]:
    """The table's cells (100,000 rows: attributes are read once each, no property twice)."""
    last = command.last
    status = command.status
    if command.resumed:
        status = "ok (resumed)"
    if last is None:
        return [command.name, "-", "-", "-", status, "-", "-", "-", "-", "-", "0", "-"]
    returncode = last.returncode
    start, end = last.start, last.end
    if status == "running" and start is not None:
        end = now
    user, system = last.user_seconds, last.system_seconds
    return [command.name, last.runner or "-", last.host or "-", compress_cores(last.cores) or "-", status,
            str(returncode) if returncode is not None else (f"sig{last.signal}" if last.signal else "-"),
            _clock(start), _seconds(end - start if start is not None and end is not None else None),
            _seconds(None if user is None and system is None else (user or 0.0) + (system or 0.0)),
            _kib(last.max_rss_kb), str(len(command.attempts)), last.work_dir or "-"]


def summary_text(run: Run) -> str:
    summary = run.summary()
    state = summary["state"] + (f", exit status {summary['exit_status']}" if summary["exit_status"] is not None
                                else "")
    argv = summary["argv"]
    lines = [f"run      {run.run_id} ({state})",
             f"config   {summary['config']}" + (" -- " + " ".join(argv) if argv else ""),
             f"started  {_clock(run.start, date=True)}, elapsed {_seconds(run.elapsed)}",
             f"commands {len(run.commands)}: {_counts_text(summary['counts']) or 'none'}"
             + (f"; {summary['retries']} retries" if summary["retries"] else "")
             + (f"; {summary['resumed']} resumed" if summary["resumed"] else "")]
    if run.runners:
        lines.append("runners  " + ", ".join(_runner_text(r) for r in run.runners.values()))
    if summary["halted"]:
        lines.append(f"halted   {summary['halted']}")
    lines.append(f"log      {run.path}" + (f" ({run.skipped_lines} unreadable lines skipped)"
                                           if run.skipped_lines else ""))
    return "\n".join(lines)


def _runner_text(runner: dict[str, Any]) -> str:
    where = runner.get("host") or "?"
    pool = runner.get("core_pool")
    slots = f"{runner.get('max_jobs')} slots" + (f", cores {compress_cores(pool)}" if pool else "")
    return f"{runner.get('name')} ({where}, {slots})"


# -- report / export -------------------------------------------------------------------------------------


def command_report(args: argparse.Namespace) -> int:
    from .report import write_report  # the HTML assets are read only when a report is asked for
    run = _load(args.run, args.config)
    output = args.output or f"{run.run_id}.html"
    write_report(run, output)
    print(f"parallux: report of run {run.run_id} ({len(run.commands)} commands) written to {output}",
          file=sys.stderr)
    return EXIT_OK


def command_export(args: argparse.Namespace) -> int:
    from . import export as _export
    run = _load(args.run, args.config)
    if args.trace:
        target, writer = args.trace, _export.write_trace
    elif args.junit:
        target, writer = args.junit, _export.write_junit
    else:
        target, writer = args.csv, lambda run, stream: write_rows(stream, run, run.commands, "csv")
    if target == "-":
        writer(run, sys.stdout)
    else:
        write_atomically(target, lambda stream: writer(run, stream))
        print(f"parallux: run {run.run_id} ({len(run.commands)} commands) exported to {target}", file=sys.stderr)
    return EXIT_OK


def write_atomically(path: str, write: Callable[[IO[str]], None]) -> None:
    """Write under a temporary name and rename: a failed export never leaves half a file under ``path``."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        # surrogateescape: a name made of undecodable bytes (a file name) is written back as those bytes
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape", newline="") as stream:
            write(stream)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# -- compare ---------------------------------------------------------------------------------------------


COMPARE_FIELDS = ("work_relpath", "name", "status_a", "status_b", "duration_a", "duration_b", "ratio",
                  "runner_a", "runner_b")


def command_compare(args: argparse.Namespace) -> int:
    run_a, run_b = _load(args.run_a, args.config), _load(args.run_b, args.config)
    result = compare_runs(run_a, run_b)
    if args.format == "json":
        write_json_rows(sys.stdout, {k: v for k, v in result.items() if k != "commands"}, "commands",
                        result["commands"])
    elif args.format in ("csv", "tsv"):
        _write_delimited(sys.stdout, list(COMPARE_FIELDS),
                         ([_cell(row[k], k) for k in COMPARE_FIELDS] for row in result["commands"]), args.format)
    else:
        print(compare_text(result))
    return EXIT_OK


def compare_runs(run_a: Run, run_b: Run) -> dict[str, Any]:
    """Commands matched by work_relpath: status changes, the ratio B/A of durations, their geometric mean."""
    by_path_a = {c.work_relpath: c for c in run_a.commands if c.work_relpath is not None}
    by_path_b = {c.work_relpath: c for c in run_b.commands if c.work_relpath is not None}
    rows = []
    for path, a in by_path_a.items():
        b = by_path_b.get(path)
        if b is None:
            continue
        ratio = (b.duration / a.duration if a.status == b.status == "ok" and a.duration and b.duration
                 and not a.resumed and not b.resumed else None)
        rows.append({"work_relpath": path, "name": b.name, "status_a": a.status, "status_b": b.status,
                     "duration_a": _round(a.duration), "duration_b": _round(b.duration), "ratio": _round(ratio),
                     "runner_a": a.runner, "runner_b": b.runner})
    rows.sort(key=lambda r: (r["ratio"] is None, -(r["ratio"] or 0.0)))
    mean = geometric_mean([r["ratio"] for r in rows if r["ratio"] is not None])
    return {"a": run_a.summary(), "b": run_b.summary(), "matched": len(rows),
            "only_a": sorted(p for p in by_path_a if p not in by_path_b),
            "only_b": sorted(p for p in by_path_b if p not in by_path_a),
            "status_changes": [r for r in rows if r["status_a"] != r["status_b"]],
            "compared": sum(r["ratio"] is not None for r in rows),
            "geometric_mean": _round(mean, 4), "commands": rows}


def compare_text(result: dict[str, Any]) -> str:
    a, b = result["a"], result["b"]
    lines = [f"A        {a['run_id']}  {_clock(a['start'], date=True)}  {_counts_text(a['counts'])}",
             f"B        {b['run_id']}  {_clock(b['start'], date=True)}  {_counts_text(b['counts'])}",
             f"matched  {result['matched']} commands by work_relpath; {len(result['only_a'])} only in A, "
             f"{len(result['only_b'])} only in B"]
    if result["matched"] == 0:
        lines.append("         (generated work paths differ in every run: give commands a work_relpath, "
                     "or use workloads(), to compare runs)")
    mean = result["geometric_mean"]
    lines.append(f"duration B/A: geometric mean {mean:.3f} over {result['compared']} commands ok in both"
                 if mean is not None else "duration B/A: no command ok in both runs")
    changes = result["status_changes"]
    if changes:
        lines += ["", f"status changes ({len(changes)}):"]
        lines += [f"  {r['work_relpath']}: {r['status_a']} -> {r['status_b']}" for r in changes]
    if result["commands"]:
        lines.append("")
        headers = ("WORK_RELPATH", "STATUS A", "STATUS B", "DURATION A", "DURATION B", "B/A")
        rows = [[r["work_relpath"], r["status_a"], r["status_b"], _seconds(r["duration_a"]),
                 _seconds(r["duration_b"]), "-" if r["ratio"] is None else f"{r['ratio']:.3f}"]
                for r in result["commands"]]
        lines.append(_table_text(headers, rows))
    return "\n".join(lines)


def geometric_mean(values: list[float]) -> float | None:
    values = [v for v in values if v > 0 and math.isfinite(v)]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


# -- formatting ------------------------------------------------------------------------------------------


def compress_cores(cores: Sequence[int] | None) -> str:
    """[0, 1, 2, 3, 8] -> "0-3,8"."""
    if not cores:
        return ""
    cores = sorted(cores)
    parts = []
    first = previous = cores[0]
    for core in [*cores[1:], None]:
        if core is not None and core == previous + 1:
            previous = core
            continue
        parts.append(str(first) if first == previous else f"{first}-{previous}")
        if core is not None:
            first = previous = core
    return ",".join(parts)


def _counts_text(counts: dict[str, int] | None) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted((counts or {}).items()))


def _clock(epoch: float | None, date: bool = False) -> str:
    if epoch is None:
        return "-"
    if date:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
    second = int(epoch)
    text = _CLOCKS.get(second)
    if text is None:  # strftime costs microseconds, and a run's commands start within a few seconds
        text = _CLOCKS[second] = time.strftime("%H:%M:%S", time.localtime(second))
    return f"{text}.{int((epoch - second) * 10)}"


_CLOCKS: dict[int, str] = {}


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} s" if value < 10 else format_seconds(value)


def _kib(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{value:.0f}{unit}" if unit == "K" else f"{value:.1f}{unit}"
        value /= 1024  # type: ignore[assignment]
    return "-"


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def _short_path(path: str | None) -> str:
    if not path:
        return "-"
    home = os.path.expanduser("~")
    return "~" + path[len(home):] if path.startswith(home + os.sep) else path


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=1) + "\n")


def write_json_rows(stream: IO[str], head: dict[str, Any], key: str, rows: Iterable[dict[str, Any]]) -> None:
    """``{...head, key: [rows]}`` with one row per line: json's indenting encoder is pure Python, ten times
    slower than its compact one, and a row per line reads (and greps) well."""
    stream.write("{" + json.dumps(head)[1:-1] + f", {json.dumps(key)}: [")
    separator = "\n"
    for row in rows:
        stream.write(separator + jsonl.dumps(row))
        separator = ",\n"
    stream.write("\n]}\n")


def _write_delimited(stream: IO[str], header: list[str], rows: Iterable[list[Any]], fmt: str) -> None:
    if fmt == "tsv":  # one line per row: tabs and newlines inside a value would break it
        stream.write("\t".join(header) + "\n")
        for row in rows:
            stream.write("\t".join(_tsv(v) for v in row) + "\n")
        return
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def _tsv(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _print_table(headers: Sequence[str], rows: list[list[str]]) -> None:
    sys.stdout.write(_table_text(headers, rows) + "\n")


def _table_text(headers: Sequence[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    columns = list(zip(headers, *rows))
    widths = [max(map(len, column)) for column in columns[:-1]]
    formats = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    lines = [formats.format(*row) for row in [headers, *rows]]
    return "\n".join(lines)
