"""What ``parallux clean`` leaves on other machines (SSH and Slurm runners), and the commands that would clean it.

``clean`` removes nothing it cannot check with its own eyes (a work dir's lock, a symbolic link on the way), so
a remote workspace is only listed: per runner, the directories of the runs removed and the ``.history`` copies
older than the oldest run kept, each as a command line to paste -- the runner's ``login`` (``ssh host``, or a
one-task ``srun`` on the node) followed by a shell command. Long lists are split so that no command line gets
near the kernel's limit for one argument (128 KiB).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from .places import Place

CHUNK = 60 * 1024  # characters of paths in one command line


@dataclass
class RemoteWork:
    """One runner's work dirs elsewhere that a clean would remove."""

    place: Place                                            # any of them: the runner, how to reach it
    runs: set[str] = field(default_factory=set)
    work_dirs: int = 0
    paths: set[str] = field(default_factory=set)            # to remove whole
    history: dict[str, float] = field(default_factory=dict)  # a work dir -> remove copies made before this

    def login(self) -> list[str]:
        if self.place.login:
            return list(self.place.login)
        return ["ssh", self.place.host or "HOST"]  # (a log from before runners said how to reach them)

    def lines(self) -> list[str]:
        place = self.place
        what = []
        if self.paths:
            runs = len(self.runs)
            what.append(f"{self.work_dirs} work dir{'' if self.work_dirs == 1 else 's'} of {runs} "
                        f"run{'' if runs == 1 else 's'} removed from the history")
        if self.history:
            what.append(f".history copies in {len(self.history)} work dir{'' if len(self.history) == 1 else 's'}")
        host = f", {place.host}" if place.host else ""
        lines = [f"not cleaned: runner {place.runner!r} ({place.kind}{host}): {' and '.join(what)}; "
                 f"to clean {'it' if len(what) == 1 else 'them'} there:"]
        lines += [f"  {command}" for command in self.commands()]
        return lines

    def commands(self) -> list[str]:
        login = self.login()
        commands = [shlex.join(login + [shlex.join(["rm", "-rf", "--", *chunk])])
                    for chunk in chunks(sorted(self.paths))]
        cutoffs: dict[float, list[str]] = {}
        for path, cutoff in self.history.items():
            cutoffs.setdefault(cutoff, []).append(path)
        for cutoff, paths in sorted(cutoffs.items()):
            for chunk in chunks(sorted(paths)):
                # the copies <work dir>/.history/<n>, made (their mtime) at or before the cutoff
                find = (f"find {' '.join(map(shlex.quote, chunk))} -mindepth 2 -maxdepth 2 -path \"*/.history/*\" "
                        f"-type d ! -newermt @{int(cutoff * 1000) / 1000:.3f} -exec rm -rf -- {{}} +")
                commands.append(shlex.join(login + [find]))
        return commands


def chunks(paths: list[str]) -> list[list[str]]:
    found: list[list[str]] = []
    size = CHUNK
    for path in paths:
        if size + len(path) > CHUNK:
            found.append([])
            size = 0
        found[-1].append(path)
        size += len(path) + 3
    return found
