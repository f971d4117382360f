"""The ``parallux`` command line.

``parallux [OPTIONS] CONFIG [-- ARG ...]``. Options may come before CONFIG, or after it (the seed's
``parallux examples/basic.py --dry-run``). Everything after ``--`` belongs to the config; without ``--``,
whatever follows CONFIG and does not begin with ``-`` (``case=hello``) belongs to the config too.

The command line is strict, because a typo must never run a campaign: before ``--``, an item beginning with
``-`` must be one of parallux's options, spelt out (``--dryrun`` and the abbreviation ``--resum`` are usage
errors, found before the config is even read); after ``--``, an item that spells one of them is the config's,
as the contract says, but parallux says where it went.
"""

from __future__ import annotations

import argparse
import difflib
import gc
import os
import signal
import sys
from typing import Sequence

from . import _prespawn
from ._exit import EXIT_SIGINT, EXIT_USAGE
from ._views import SUBCOMMANDS

DESCRIPTION = ("Run the shell commands a Python config describes, in parallel: locally, over SSH and on Slurm "
               "clusters.")
EPILOG = """\
exit status: 0 success; 1 a check=True command failed or the config raised; 2 usage or config error
before any command ran; 129 hung up (SIGHUP); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
Config arguments: goal.argv holds them all, goal.args the key=value ones. Between CONFIG and --, an item
that begins with - must be one of the options above; put the config's own options after --."""
USAGE = "%(prog)s [OPTIONS] CONFIG [-- ARG ...]"
GC_YOUNG = 10_000  # allocations between two young garbage collections during a run (see run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parallux", usage=USAGE, description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("config", metavar="CONFIG", help="the Python config file to run")
    parser.add_argument("--version", action=VersionAction,
                        help="print parallux's, Python's and the main libraries' versions and exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the execution plan (runner, work dir, cores, command line of every "
                             "command) without starting anything or creating any directory")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors and the final summary")
    parser.add_argument("-v", "--verbose", action="store_true", help="print a line for every command event")
    parser.add_argument("--resume", action="store_true",
                        help="skip commands whose work dir holds a successful record of the same command "
                             "from an earlier run (commands with an explicit work_relpath only)")
    parser.add_argument("--retries", type=non_negative, default=0, metavar="N",
                        help="rerun a failed command up to N more times (default 0; retries= overrides)")
    parser.add_argument("--halt", default="never", metavar="MODE[:N]", type=halt_policy,
                        help="never (default): keep going; soon[:N]: start nothing new after N failures "
                             "(default 1) and let running commands finish; now[:N]: stop everything")
    parser.add_argument("--log", metavar="FILE", help="write the run log here (default: "
                        "$XDG_STATE_HOME/parallux/runs/<config>-<hash>/<run id>.jsonl, ~/.local/state "
                        "if unset)")
    parser.add_argument("--no-log", action="store_true", help="do not write a run log")
    parser.add_argument("--progress-interval", type=float, default=10.0, metavar="SECONDS",
                        help="seconds between progress lines when not on a terminal (0: none)")
    return parser


class VersionAction(argparse.Action):
    """``--version``: the versions a bug report needs, read only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from ._about import version_text
        try:
            print(version_text(), flush=True)
        except BrokenPipeError:  # `parallux --version | head -1`: the reader has seen enough
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        parser.exit()


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return value


def halt_policy(text: str) -> tuple[str, int]:
    mode, _, count = text.partition(":")
    if mode not in ("never", "soon", "now"):
        raise argparse.ArgumentTypeError(f"the mode is never, soon or now, not {mode!r}")
    try:
        failures = int(count) if count else 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"the failure count must be an int, not {count!r}") from None
    if failures < 1:
        raise argparse.ArgumentTypeError("the failure count must be >= 1")
    return mode, failures


class UsageError(Exception):
    """A command line parallux refuses; the message says what was wrong and what was probably meant."""


def split_argv(argv: Sequence[str], parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """Separate parallux's own arguments from the config's (see the module docstring).

    Raises UsageError for an item before ``--`` that begins with ``-`` and is no option of parallux's.
    """
    options = option_strings(parser)
    ours: list[str] = []
    theirs: list[str] = []
    seen_config = pending_value = False
    for index, item in enumerate(argv):
        if pending_value:  # the value of --log, --halt, ...: whatever it looks like, even '-x.jsonl'
            option = ours.pop()
            ours.append(f"{option}={item}" if option.startswith("--") else option + item)
            pending_value = False
        elif item == "--":
            return ours, theirs + list(argv[index + 1:])
        elif item.startswith("-"):
            takes_value = option_takes_value(item, options)
            if takes_value is None:
                raise UsageError(unknown_option_message(item, options))
            ours.append(item)
            pending_value = takes_value
        elif seen_config:
            theirs.append(item)
        else:
            ours.append(item)
            seen_config = True
    return ours, theirs


def option_strings(parser: argparse.ArgumentParser) -> dict[str, bool]:
    """Every option string of the parser -> whether it takes a value."""
    return {s: a.nargs != 0 for a in parser._actions for s in a.option_strings}


def option_takes_value(item: str, options: dict[str, bool]) -> bool | None:
    """Whether ``item`` (an option as written) needs the next item as its value; None: no such option.

    Exact spellings only: ``--opt``, ``--opt=VALUE`` and grouped short flags (``-qv``); never a prefix.
    """
    name, equals, _ = item.partition("=")
    if name in options:
        return options[name] and not equals
    if not item.startswith("--") and len(item) > 2 and not equals:  # -qv: every letter a flag
        flags = [f"-{letter}" for letter in item[1:]]
        if all(options.get(flag) is False for flag in flags):
            return False
    return None


def unknown_option_message(item: str, options: dict[str, bool]) -> str:
    name = item.partition("=")[0]
    candidates = [o for o in options if o.startswith("--")] if name.startswith("--") else list(options)
    # One or two characters ('-', '-x') are too short to resemble anything: guessing would mislead.
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6) if len(name) > 2 else []
    hint = f" (did you mean {close[0]}?)" if close else ""
    return (f"unknown option {name!r}{hint}; nothing was run\n"
            f"  the options are {', '.join(sorted(options))}; options of the config go after '--'")


def passed_through_note(config_args: Sequence[str], options: dict[str, bool]) -> str | None:
    """The one line saying that items after ``--`` which spell parallux options are the config's."""
    spelt = [a for a in config_args if a.startswith("-") and option_takes_value(a, options) is not None]
    if not spelt:
        return None
    items = ", ".join(repr(a) for a in spelt)
    verb, pronoun = ("comes", "it is") if len(spelt) == 1 else ("come", "they are")
    return f"parallux: note: {items} {verb} after '--', so {pronoun} passed to the config, not to parallux"


def parse_command_line(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """parallux's options and the config's arguments; SystemExit (argparse's) for --help or a usage error."""
    parser = build_parser()
    try:
        ours, config_args = split_argv(argv, parser)
    except UsageError as exc:
        parser.error(str(exc))
    args = parser.parse_args(ours)
    note = passed_through_note(config_args, option_strings(parser))
    if note:
        print(note, file=sys.stderr, flush=True)
    return args, config_args


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # `parallux WORD ...` looks at runs (parallux/_views/); a config named like one runs as `parallux ./WORD`.
    if words and words[0] in SUBCOMMANDS:
        from ._views.subcommands import main as run_subcommand
        return run_subcommand(words)
    try:
        args, config_args = parse_command_line(words)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return int(exc.code or 0) if exc.code in (0, None) else EXIT_USAGE
    # Ctrl-C must stop the run even when parallux was started with SIGINT ignored (``cmd &`` in a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if not args.dry_run:
        _prespawn.start()  # overlaps the launcher's start-up with the imports below
    try:
        return run(args, config_args)
    finally:
        _prespawn.discard()


def run(args: argparse.Namespace, config_args: list[str]) -> int:
    from ._session import RunOptions, Session  # Trio and the engine: imported after the launcher was started
    # What the imports made lives until the process ends: leave it out of every garbage collection, those
    # during the run and the one at exit (with a long run's worth of objects, ~20 ms after the config ends).
    gc.freeze()
    # A run allocates a few objects per command, and keeps most: with a young collection every 700
    # allocations (Python's default), 100,000 trivial commands spent 0.17 s in the collector (584 young, 52
    # middle and 4 full collections, the full ones 0.10 s); every 10,000, 0.075 s (95, 8, none), and at most
    # that many objects of cyclic garbage wait for the next.
    gc.set_threshold(GC_YOUNG)
    halt = args.halt if isinstance(args.halt, tuple) else halt_policy(args.halt)
    options = RunOptions(dry_run=args.dry_run, quiet=args.quiet, verbose=args.verbose, resume=args.resume,
                         retries=args.retries, halt=halt[0], halt_after=halt[1], log_path=args.log,
                         write_log=not args.no_log, progress_interval=args.progress_interval)
    if args.dry_run:
        options.observers.append(print_plan)
    try:
        return Session(args.config, config_args, options).run()
    except KeyboardInterrupt:  # in the instants before or after the config runs: nothing left to stop
        return EXIT_SIGINT


def print_plan(event: str, command: object, **details: object) -> None:
    """A dry run's plan line for each command, when the scheduler starts it (on a plan launcher)."""
    if event != "started":
        return
    argv = details["argv"]
    assert isinstance(argv, list)
    from shlex import join
    bench = getattr(command, "bench", None)
    if bench is not None:  # one line per benchmark, once its last execution is planned
        row = bench.plan_row()
        if row is None:
            return
        name, runners, work_dir, cores = row
    else:
        name, runners, work_dir = command.name, command.runner_name, command.work_dir  # type: ignore[attr-defined]
        cores = ",".join(map(str, getattr(command, "cores", ()))) or "-"
    gpus = ",".join(map(str, getattr(command, "gpus", ())))
    try:
        print(f"{name}\t{runners}\t{work_dir}\tcores={cores}\t" + (f"gpus={gpus}\t" if gpus else "") + join(argv),
              flush=True)
    except BrokenPipeError:  # `parallux cfg.py --dry-run | head`: the reader has seen enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
