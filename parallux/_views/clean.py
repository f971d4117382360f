"""``parallux clean``: the runs a config's history no longer needs, the work dirs generated for them, and the
``.history`` copies older than every run kept.

Kept, per config: its newest N runs that started commands, its newest N runs that started none (config errors:
never do they push a real run out), and every run that may still be going. Of every other run, ``clean``
removes the work dirs parallux generated for it (never one the config named: ``places``) on this machine,
then its log. A log stays while one of its work dirs is left (in use by a live run, a symbolic link where the
directory was, an error), so the next ``clean`` finds the rest. In the work dirs the config named, the
``.history/<n>`` copies made (their mtime) before the oldest kept run started are removed. Work dirs on
other machines (SSH, Slurm) are listed with the command that would clean them there.

Nothing outside the workspaces and the state dir is touched, and no symbolic link is followed (``prune``);
a work dir whose lock names a live run is left alone. ``--dry-run`` does every check and removes nothing.
"""

from __future__ import annotations

import os
import posixpath
import stat
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import IO

from .._printable import printable
from .._statedir import default_log_dir
from .history import RunEntry, list_runs
from .output import kib_text, short_path
from .places import Place, generated_form, places
from .reader import load_run
from .records import HistoryError, Run
from .prune import Refused, live_holder, lstat_below, open_below, opened, remove_if_empty, remove_tree, tree_size
from .remote import RemoteWork

GOING = ("running", "unknown")  # unknown: another machine's run without a summary; it may be going there


def clean(config: str | None, keep: int, dry_run: bool, out: IO[str] | None = None) -> int:
    """Clean the history (of ``config``); the exit status: 0, or 1 when something could not be removed."""
    root = default_log_dir()
    entries = list_runs(config, every=True, root=root)
    if config and not entries:
        raise HistoryError(f"no runs of {config} in {root} (`parallux runs --all` lists the runs)")
    cleaner = Cleaner(root, dry_run, out or sys.stdout)
    for runs in by_config(entries).values():
        cleaner.clean_config(runs, keep)
    cleaner.prune_histories()
    return cleaner.finish()


def by_config(entries: list[RunEntry]) -> dict[str, list[RunEntry]]:
    """Newest first within each config, as ``list_runs`` gives them."""
    groups: dict[str, list[RunEntry]] = defaultdict(list)
    for entry in entries:
        groups[str(entry.info.get("config") or os.path.dirname(entry.path))].append(entry)
    return groups


def split(runs: list[RunEntry], keep: int) -> tuple[list[RunEntry], list[RunEntry], list[RunEntry]]:
    """(kept, removed, kept only as still going) of one config's runs, newest first."""
    newest = {id(e) for e in [e for e in runs if e.started][:keep] + [e for e in runs if not e.started][:keep]}
    going = [e for e in runs if e.state in GOING and id(e) not in newest]
    kept = newest | {id(e) for e in going}
    return [e for e in runs if id(e) in kept], [e for e in runs if id(e) not in kept], going


@dataclass
class Tally:
    runs: int = 0
    work_dirs: int = 0
    copies: int = 0
    freed: int = 0
    kept: int = 0
    errors: int = 0
    seen: set[tuple[int, int]] = field(default_factory=set)  # inodes counted (hard links count once)


class Cleaner:
    """Does (or, in a dry run, checks) each removal, and says what it did."""

    def __init__(self, root: str, dry_run: bool, out: IO[str]) -> None:
        self.root = root
        self.dry_run = dry_run
        self.out = out
        self.tally = Tally()
        # a work dir a config named -> (where, the cutoff of its .history copies)
        self.explicit: dict[tuple[bool, tuple[str, ...], str], tuple[Place, float]] = {}
        self.remote: dict[tuple[str, tuple[str, ...]], RemoteWork] = {}

    def say(self, text: str) -> None:
        self.out.write(printable(text) + "\n")  # (paths and names may hold anything: a terminal obeys some)

    # -- runs -----------------------------------------------------------------------------------------

    def clean_config(self, runs: list[RunEntry], keep: int) -> None:
        kept, removed, going = split(runs, keep)
        self.tally.kept += len(kept)
        for entry in going:
            self.say(f"kept run {entry.run_id} of {short_path(entry.info.get('config'))}: "
                     + ("still going" if entry.state == "running" else
                        f"it may still be going on {entry.info.get('host')} (its log has no end)"))
        loaded = {id(e): self.load(e) for e in runs}
        starts = [e.start for e in kept if e.started or e.state in GOING]
        cutoff = min(starts) if starts else None
        for entry in runs:
            run = loaded[id(entry)]
            if run is not None and cutoff is not None:
                for place in places(run, generated=False):
                    key = (place.local, place.login, place.path)
                    self.explicit[key] = (place, min(cutoff, self.explicit.get(key, (place, cutoff))[1]))
        for entry in removed:
            run = loaded[id(entry)]
            if run is not None:
                self.clean_run(entry, run)

    def load(self, entry: RunEntry) -> Run | None:
        try:
            return load_run(entry.path)
        except HistoryError as exc:
            self.say(f"kept run {entry.run_id}: {exc}")
            return None

    def clean_run(self, entry: RunEntry, run: Run) -> None:
        generated = list(places(run, generated=True))
        here = [p for p in generated if p.local]
        elsewhere = len(generated) - len(here)
        size_before, left = self.tally.freed, 0
        for place in here:
            left += not self.remove_work_dir(place)
        self.remove_run_dirs(here, run.run_id)
        self.list_remote(run, [p for p in generated if not p.local])
        what = f"{'would remove' if self.dry_run else 'removed'} run {run.run_id} of " \
               f"{short_path(entry.info.get('config'))}"
        if left:
            self.say(f"{what}: {plural(len(here) - left, 'work dir')} "
                     f"({kib_text((self.tally.freed - size_before) // 1024)}); kept its log, as "
                     f"{plural(left, 'work dir')} {'was' if left == 1 else 'were'} left (see above)")
            return
        log = self.remove_log(entry)
        if log is None:
            return
        removed = log + (f" and {plural(len(here), 'work dir')}" if here else "")
        remote = f"; {plural(elsewhere, 'work dir')} on other machines: see below" if elsewhere else ""
        self.say(f"{what}: {removed} ({kib_text((self.tally.freed - size_before) // 1024)}){remote}")
        self.tally.runs += 1

    def remove_log(self, entry: RunEntry) -> str | None:
        """Remove the run's entry in the history: its log, or the link to a log written with --log (whose
        file, outside the state dir, is the user's); what went, or None when it could not. Reached from the
        state dir as work dirs are from their workspace: a link on the way is not followed."""
        parent, name = os.path.split(os.path.relpath(entry.path, self.root))
        target = os.path.realpath(entry.path)
        linked = False
        try:
            with opened(self.root, parent) as fd:
                st = lstat_below(fd, name)
                if st is None:
                    return "its log (gone already)"
                linked = stat.S_ISLNK(st.st_mode)
                if not self.dry_run:
                    os.unlink(name, dir_fd=fd)
                self.tally.freed += 0 if linked else st.st_blocks * 512
        except (OSError, Refused) as exc:
            self.error(entry.path, exc if isinstance(exc, OSError) else OSError(str(exc)))
            return None
        if linked:
            return f"its entry in the history (its log {target}, written with --log, is left)"
        return "its log"

    # -- work dirs ------------------------------------------------------------------------------------

    def remove_work_dir(self, place: Place) -> bool:
        """Whether the generated work dir is gone now (or would be); says why when it is left."""
        parent, name = posixpath.split(place.relpath)
        try:
            with opened(place.workspace, parent) as fd:
                st = lstat_below(fd, name)
                if st is None:
                    return True
                inner = open_below(fd, name)
                try:
                    holder = live_holder(inner)
                finally:
                    os.close(inner)
                if holder is not None:
                    self.left(place.path, in_use(holder))
                    return False
                self.remove(fd, name)
                self.tally.work_dirs += 1
        except FileNotFoundError:
            return True
        except Refused as exc:
            self.left(place.path, str(exc))
            return False
        except OSError as exc:
            self.error(place.path, exc)
            return False
        return True

    def remove(self, dir_fd: int, name: str) -> int:
        size = tree_size(dir_fd, name, self.tally.seen)
        if not self.dry_run:
            remove_tree(dir_fd, name)
        self.tally.freed += size
        return size

    def remove_run_dirs(self, removed: list[Place], run_id: str) -> None:
        """``<workspace>/<run id>``, the directory of its generated work dirs, once nothing is left in it."""
        if self.dry_run:
            return
        for workspace in {p.workspace for p in removed}:
            try:
                with opened(workspace, "") as fd:
                    remove_if_empty(fd, run_id)
            except (OSError, Refused):
                pass

    def left(self, path: str, why: str) -> None:
        self.say(f"left {path}: {why}")

    def error(self, path: str, exc: OSError) -> None:
        self.tally.errors += 1
        print(f"parallux clean: cannot remove {path}: {exc.strerror or exc}", file=sys.stderr)

    # -- .history copies ------------------------------------------------------------------------------

    def prune_histories(self) -> None:
        for place, cutoff in sorted(self.explicit.values(), key=lambda item: item[0].path):
            if place.local:
                self.prune_history(place, cutoff)
            else:
                self.remote_for(place).history[place.path] = cutoff

    def prune_history(self, place: Place, cutoff: float) -> None:
        """Remove the work dir's ``.history/<n>`` copies made before ``cutoff``."""
        where = posixpath.join(place.path, ".history")
        try:
            with opened(place.workspace, place.relpath) as work:
                holder = live_holder(work)
                if holder is not None:
                    if lstat_below(work, ".history") is not None:
                        self.left(where, in_use(holder))
                    return
                if lstat_below(work, ".history") is None:
                    return
                history = open_below(work, ".history")
                try:
                    self.prune_copies(history, where, cutoff)
                finally:
                    os.close(history)
        except FileNotFoundError:
            return
        except Refused as exc:
            self.left(where, str(exc))
        except OSError as exc:
            self.error(where, exc)

    def prune_copies(self, history: int, where: str, cutoff: float) -> None:
        for name in sorted((n for n in os.listdir(history) if n.isdigit()), key=int):
            st = lstat_below(history, name)
            if st is None or not stat.S_ISDIR(st.st_mode) or st.st_mtime >= cutoff:
                continue  # (a link there is not a copy parallux made)
            size = self.remove(history, name)
            self.tally.copies += 1
            self.say(f"{'would remove' if self.dry_run else 'removed'} {where}/{name} ({kib_text(size // 1024)})")

    # -- other machines -------------------------------------------------------------------------------

    def remote_for(self, place: Place) -> RemoteWork:
        key = (place.runner, place.login)
        if key not in self.remote:
            self.remote[key] = RemoteWork(place)
        return self.remote[key]

    def list_remote(self, run: Run, generated: list[Place]) -> None:
        """A run's generated work dirs elsewhere: its whole ``<workspace>/<run id>`` directory when the
        config named no path in it (it cannot know the run id in advance), else each work dir."""
        form = generated_form(run.run_id)
        named = any(c.work_relpath and c.work_relpath.startswith(run.run_id + "/")
                    and not form.fullmatch(c.work_relpath) for c in run.commands)
        for place in generated:
            remote = self.remote_for(place)
            remote.runs.add(run.run_id)
            remote.work_dirs += 1
            remote.paths.add(place.path if named else posixpath.join(place.workspace, run.run_id))

    # -- the end --------------------------------------------------------------------------------------

    def finish(self) -> int:
        for remote in self.remote.values():
            for line in remote.lines():
                self.say(line)
        self.say(summary(self.tally, self.dry_run))
        return 1 if self.tally.errors else 0


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def in_use(holder: dict[str, object]) -> str:
    where = ", ".join(f"{key} {holder[key]}" for key in ("host", "pid") if holder.get(key) is not None)
    return f"in use by run {holder.get('run_id')}" + (f" ({where})" if where else "")


def summary(tally: Tally, dry_run: bool) -> str:
    done = [plural(n, one, many) for n, one, many in
            ((tally.runs, "run", None), (tally.work_dirs, "work dir", None),
             (tally.copies, ".history copy", ".history copies")) if n]
    listed = ", ".join(done[:-1]) + (" and " if len(done) > 1 else "") + done[-1] if done else ""
    kept = plural(tally.kept, "run")
    if not done:
        return f"parallux clean: nothing to remove here; {kept} kept"
    if dry_run:
        return (f"parallux clean: dry run, nothing was removed: would remove {listed}; would free "
                f"{kib_text(tally.freed // 1024)}; would keep {kept}")
    return f"parallux clean: removed {listed}; freed {kib_text(tally.freed // 1024)}; kept {kept}"
