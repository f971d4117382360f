"""``parallux runs|show|report|export|compare|clean``: each subcommand's options, and the dispatch to its view.

``parallux WORD ...`` with one of these words first runs the subcommand (the CLI sends it here); a config file
that happens to be named like one is run as ``parallux ./runs``. Every subcommand reads run logs only, so it
needs no runner, and works on a run still going from a second terminal. A run that cannot be found or read
is a usage error (exit 2), and so is a file that cannot be written where the user asked (``target``).
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import shlex
import sys
import time
from typing import IO, Any, Callable, Sequence

from .._exit import EXIT_FAILED, EXIT_OK, EXIT_SIGINT, EXIT_USAGE
from . import SUBCOMMANDS
from .benchmarks import MeasureError, check_measure, measures, split
from .benchrows import EXECUTION_HEADERS, benchmark_json, execution_rows, heading, write_stats_rows
from .benchrows import TABLE_HEADERS as BENCH_HEADERS
from .benchrows import table_row as bench_row
from .compare import COMPARE_FIELDS, compare_sides, compare_text
from .forked import in_child
from .history import RunEntry, list_runs, resolve_run
from .output import (cell, clock_text, counts_text, print_json, print_table, seconds_text, short_path,
                     write_delimited, write_json_lists, write_json_rows)
from .machines import config_of, machines_of, machines_text
from .reader import load_run
from .records import HistoryError, Run
from .schema import skipped_text
from .sides import Side, side_of
from .significance import warm_up
from .show import TABLE_HEADERS, command_row, select, select_benchmarks, summary_text, table_row, write_rows
from .target import TargetError, check_target, write_target

FORMATS = ("table", "csv", "tsv", "json")


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
    show.add_argument("--metric", metavar="NAME", default="wall",
                      help="the measure of the benchmarks' rows: wall (default), cpu, memory, or a metric's name")
    show.add_argument("--repetitions", action="store_true",
                      help="also a row per execution of each benchmark (warm-ups and repetitions)")
    _add_format(show)

    report = _parser("report", "Write one self-contained HTML report of a run (opens from disk, no network).")
    _add_run(report)
    report.add_argument("-o", "--output", metavar="FILE.html",
                        help="where to write it (default: ./<run id>.html); - for stdout")

    export = _parser("export", "Export a run as a Chrome trace (Perfetto), JUnit XML or CSV.")
    _add_run(export)
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--trace", metavar="FILE.json", help="Chrome trace event format (Perfetto UI, "
                                                               "chrome://tracing); - for stdout")
    target.add_argument("--junit", metavar="FILE.xml", help="JUnit XML, one testcase per command; - for stdout")
    target.add_argument("--csv", metavar="FILE", help="one row per command; - for stdout")

    compare = _parser("compare", "Compare two runs benchmark by benchmark (and command by command): the ratio of "
                                 "the medians, its 95%% interval, a p-value and a verdict.")
    compare.add_argument("run_a", metavar="RUN_A", help="the baseline run")
    compare.add_argument("run_b", metavar="RUN_B", help="the run compared with it")
    compare.add_argument("--config", metavar="PATH", help="look the run ids up among this config's runs")
    compare.add_argument("--metric", metavar="NAME", default="wall",
                         help="the measure compared: wall (default), cpu, memory, or a metric's name")
    compare.add_argument("--higher-is-better", action="store_true",
                         help="the metric is a rate (GFLOP/s): a higher B is faster (default: lower is better, "
                              "as for wall, cpu and memory)")
    compare.add_argument("--threshold", type=percent, default=2.0, metavar="PCT",
                         help="a change smaller than PCT%% is same, however significant (default 2)")
    compare.add_argument("--fail-on", choices=("slower", "change"),
                         help="exit 1 when a benchmark is slower (change: slower or faster): a CI gate")
    compare.add_argument("--match", choices=("key", "name"), default="key",
                         help="match by key (work_relpath, the default) or by command name (two campaigns "
                              "with different work prefixes)")
    _add_format(compare)
    clean = _parser("clean", "Remove old runs: their logs, the work dirs generated for them on this machine, "
                             "and .history copies older than every run kept.")
    clean.add_argument("--config", metavar="PATH", help="only the runs of this config")
    clean.add_argument("--keep", type=positive, default=10, metavar="N",
                       help="keep the newest N runs of each config that started commands, and the newest N that "
                            "started none (default 10); runs still going are always kept")
    clean.add_argument("--dry-run", action="store_true", help="say what would be removed, and remove nothing")
    parsers = {"runs": runs, "show": show, "report": report, "export": export, "compare": compare, "clean": clean}
    assert tuple(parsers) == SUBCOMMANDS
    return parsers


def percent(text: str) -> float:
    value = float(text)
    if not 0 <= value < 100:  # (nan fails too)
        raise argparse.ArgumentTypeError(f"must be a percentage from 0 to 100, not {text}")
    return value


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
    except (HistoryError, TargetError, MeasureError) as exc:
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
    """The run, and on stderr a word on what of its log was skipped, and on other runs in its file."""
    run = load_run(resolve_run(spec, config))
    if run.problems:
        print(skipped_text(run.path, run.problems), file=sys.stderr)
    if run.other_runs:
        print(f"parallux: {run.path} holds {len(run.other_runs) + 1} runs: this is its last, {run.run_id} "
              f"(give a run id for another: {', '.join(run.other_runs)})", file=sys.stderr)
    return run


# -- runs ------------------------------------------------------------------------------------------------


def command_runs(args: argparse.Namespace) -> int:
    limit = args.n if args.n is not None else (None if args.all else 20)
    entries = list_runs(args.config, every=args.all, limit=limit,
                        warn=lambda path, problems: print(skipped_text(path, problems), file=sys.stderr))
    if args.format == "json":
        print_json([e.as_dict() for e in entries])
        return EXIT_OK
    rows = [_entry_row(e) for e in entries]
    headers = ("RUN", "START", "DURATION", "STATE", "EXIT", "COMMANDS", "CONFIG", "ARGS")
    if args.format in ("csv", "tsv"):
        write_delimited(sys.stdout, ["run_id", "start", "duration", "state", "exit_status", "counts", "config",
                                     "args"],
                        ([e.run_id, e.start, e.duration, e.state, (e.finished or {}).get("exit_status"),
                          counts_text((e.finished or {}).get("counts")), e.info.get("config"),
                          shlex.join(e.info.get("argv") or [])] for e in entries),
                        args.format)
        return EXIT_OK
    if not entries:
        where = f" of {args.config}" if args.config else ""
        print(f"no runs{where} yet" + ("" if args.all else " that started commands (--all lists every run)"))
        return EXIT_OK
    print_table(headers, rows)
    return EXIT_OK


def _entry_row(entry: RunEntry) -> list[str]:
    finished = entry.finished or {}
    exit_status = finished.get("exit_status")
    return [entry.run_id, clock_text(entry.start, date=True), seconds_text(entry.duration), entry.state,
            "-" if exit_status is None else str(exit_status), counts_text(finished.get("counts")) or "-",
            short_path(entry.info.get("config")), shlex.join(entry.info.get("argv") or []) or "-"]


# -- show ------------------------------------------------------------------------------------------------


def command_show(args: argparse.Namespace) -> int:
    run = _load(args.run, args.config)
    check_measure(args.metric, [(run.run_id, measures(run))])
    everything, plain = split(run)
    benchmarks = select_benchmarks(everything, failed=args.failed, slowest=args.slowest)
    # The rows of commands: the plain ones; with --repetitions, every execution too (each a command of the log)
    commands = select(run.commands if args.repetitions else plain, failed=args.failed, slowest=args.slowest)
    if args.format == "json":
        every = measures(run)
        write_json_lists(sys.stdout, {"run": run.summary(), "measures": every, "machines": machines_of(run),
                                      "config": config_of(run)},
                         {"benchmarks": (benchmark_json(b, every) for b in benchmarks),
                          "commands": (command_row(run, c) for c in commands)})
    elif args.format in ("csv", "tsv"):
        if everything and not args.repetitions:
            write_stats_rows(sys.stdout, benchmarks, commands, measures(run), args.format)
        else:
            write_rows(sys.stdout, run, commands, args.format)
    else:
        _show_table(run, benchmarks, [c for c in commands if c.bench is None], args)
    return EXIT_OK


def _show_table(run: Run, benchmarks: list[Any], plain: list[Any], args: argparse.Namespace) -> None:
    print("\n".join([summary_text(run), *machines_text(run)]))
    if benchmarks:
        print("\n" + heading(benchmarks, args.metric))
        print_table(BENCH_HEADERS, [bench_row(b, args.metric) for b in benchmarks])
        if args.repetitions:
            print()
            headers = [args.metric.upper() if h == "VALUE" else h for h in EXECUTION_HEADERS]
            print_table(headers, [row for b in benchmarks for row in execution_rows(b, args.metric)])
    if plain:
        print()
        now = time.time()
        print_table(TABLE_HEADERS, [table_row(c, now) for c in plain])
    elif args.failed and not benchmarks:
        print("\nno command failed")


# -- report / export -------------------------------------------------------------------------------------


def command_report(args: argparse.Namespace) -> int:
    from .report import render, write_report  # the HTML assets are read only when a report is asked for
    if args.output not in (None, "-"):
        check_target(args.output)  # before the run is read: a wrong path is said at once
    run = _load(args.run, args.config)
    output = args.output or f"{run.run_id}.html"
    if output == "-":
        sys.stdout.write(render(run))
        return EXIT_OK
    write_report(run, output)
    print(f"parallux: report of run {run.run_id} ({len(run.commands)} commands) written to {output}",
          file=sys.stderr)
    return EXIT_OK


def command_export(args: argparse.Namespace) -> int:
    from . import export as _export
    target = args.trace or args.junit or args.csv
    if target != "-":
        check_target(target)  # before the run is read: a wrong path is said at once
    run = _load(args.run, args.config)
    writer = _export.write_trace if args.trace else _export.write_junit if args.junit else _write_csv
    if target == "-":
        writer(run, sys.stdout)
    else:
        write_target(target, lambda stream: writer(run, stream))
        print(f"parallux: run {run.run_id} ({len(run.commands)} commands) exported to {target}", file=sys.stderr)
    return EXIT_OK


def _write_csv(run: Run, stream: IO[str]) -> None:
    write_rows(stream, run, run.commands, "csv")


# -- compare ---------------------------------------------------------------------------------------------


def command_compare(args: argparse.Namespace) -> int:
    def side(spec: str) -> Side:
        return side_of(_load(spec, args.config), args.metric, args.match)

    sys.stdout.flush()
    # Each run read in a child of its own (a log of 10,000 benchmarks takes seconds to read), while this
    # process imports scipy (most of a second)
    side_b, side_a = in_child(side, args.run_b), in_child(side, args.run_a)
    warm_up()
    result = compare_sides(side_a(), side_b(), args.metric, args.threshold / 100, args.higher_is_better,
                           args.match)
    if args.format == "json":
        write_json_rows(sys.stdout, {k: v for k, v in result.items() if k != "commands"}, "commands",
                        result["commands"])
    elif args.format in ("csv", "tsv"):
        write_delimited(sys.stdout, list(COMPARE_FIELDS),
                        ([cell(row[k], k) for k in COMPARE_FIELDS] for row in result["commands"]), args.format)
    else:
        print(compare_text(result))
    failing = {"slower": ("slower",), "change": ("slower", "faster")}.get(args.fail_on or "", ())
    return EXIT_FAILED if any(result["verdicts"][verdict] for verdict in failing) else EXIT_OK


# -- clean -----------------------------------------------------------------------------------------------


def command_clean(args: argparse.Namespace) -> int:
    from .clean import clean  # (the launcher, which it asks about locks, is imported only here)
    return clean(args.config, args.keep, args.dry_run)
