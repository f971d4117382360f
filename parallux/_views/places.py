"""Where a run's work dirs are, as its log tells it: which runner and machine, which workspace, and whether
parallux generated the work_relpath (``parallux clean`` removes only those) or the config gave it.

A work dir is placed only when its log makes it certain: ``work_dir`` must be ``<workspace>/<work_relpath>``,
and a generated relpath must be ``<run id>/<NNNNN>[_<name>]`` of that very run, as ``_registration`` makes it
(a config cannot name that path in advance: the run id is new in every run), with a run id of parallux's
form: a log that says otherwise names nothing ``clean`` removes. Logs written before the
``queued`` event said ``work_generated`` are judged by that form alone.
"""

from __future__ import annotations

import posixpath
import re
import socket
from dataclasses import dataclass
from typing import Iterator

from .records import CommandRecord, Run


@dataclass(frozen=True)
class Place:
    """One work dir of a run."""

    runner: str
    kind: str                 # local, ssh, slurm, ... (the runner event's kind; "unknown" when not logged)
    host: str | None          # the machine (a Slurm node) it is on
    login: tuple[str, ...]    # how a user reaches it ((): this machine); a shell command follows it
    workspace: str
    relpath: str

    @property
    def local(self) -> bool:
        return not self.login and self.kind == "local"

    @property
    def path(self) -> str:
        return posixpath.join(self.workspace, self.relpath)


RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")  # as _session.new_run_id makes them
NOTHING = re.compile(r"(?!)")


def generated_form(run_id: str) -> re.Pattern[str]:
    """The work_relpaths parallux generates in that run (none, for a log whose run id is not parallux's)."""
    if not RUN_ID.fullmatch(run_id):
        return NOTHING
    return re.compile(re.escape(run_id) + r"/\d{5}(_[^/]+)?")


def is_generated(command: CommandRecord, form: re.Pattern[str]) -> bool:
    relpath = command.work_relpath
    return command.work_generated is not False and relpath is not None and form.fullmatch(relpath) is not None


def places(run: Run, generated: bool) -> Iterator[Place]:
    """The work dirs its commands used (each attempt's; a retry may have gone to another runner): those
    parallux generated, or (``generated=False``) those the config named."""
    form = generated_form(run.run_id)
    on_this_machine = run.info.get("host") in (None, socket.gethostname())
    for command in run.commands:
        if is_generated(command, form) != generated or command.work_relpath is None:
            continue
        seen = set()
        for attempt in command.attempts:
            if attempt.work_dir is None or (attempt.runner, attempt.work_dir) in seen:
                continue
            seen.add((attempt.runner, attempt.work_dir))
            place = _place(run, attempt.runner, attempt.host, attempt.work_dir, command.work_relpath,
                           on_this_machine)
            if place is not None:
                yield place


def _place(run: Run, runner: str | None, host: str | None, work_dir: str, relpath: str,
           on_this_machine: bool) -> Place | None:
    if posixpath.isabs(relpath) or ".." in relpath.split("/") or posixpath.normpath(relpath) != relpath:
        return None
    if not work_dir.endswith("/" + relpath):
        return None
    workspace = work_dir[:-len(relpath) - 1] or "/"
    if posixpath.normpath(posixpath.join(workspace, relpath)) != work_dir or not posixpath.isabs(workspace):
        return None
    record = run.runners.get(runner or "", {})
    if record.get("workspace") not in (None, workspace):
        return None
    kind = str(record.get("kind") or "unknown")
    login = tuple(record.get("login") or ())
    if not on_this_machine and not login:  # a log copied from another machine: its "local" is over there
        login = ("ssh", str(run.info.get("host")))
    return Place(runner or "?", kind, host, login, workspace, relpath)
