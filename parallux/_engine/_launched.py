"""A launched command, and how the launcher it went to went away."""

from __future__ import annotations

from typing import NamedTuple

from .._protocol import Job, LauncherClient
from .._transports._base import Pipe


class Launched(NamedTuple):
    """A launched command: its request id, the job that reports its end, and the launcher it went to (its
    client, and the words of its death): a new launcher, after that one died, changes none of them."""

    id: int
    job: Job
    client: LauncherClient
    end: LauncherEnd


class LauncherEnd:
    """How one launcher died under its commands, in the same words for all of them (the summary groups
    failures by them): from its pipe -- how the process parallux, sshd or srun started, its guardian, ended --
    or else from what the launcher said as it ended."""

    def __init__(self, pipe: Pipe | None, host: str) -> None:
        self.pipe = pipe  # None: no launcher reached yet
        self.host = host
        self.words: str | None = None

    def lost_reason(self) -> str | None:
        """Why the launcher went away, if its carrier knows better than the stream (an allocation ended)."""
        return self.pipe.lost_reason() if self.pipe is not None else None

    def death(self, said: str | None = None) -> str | None:
        """None while neither knows (a lost connection: the client's own words tell that)."""
        if self.words is None:
            how = (self.pipe.death() if self.pipe is not None else None) or said
            if how is not None:
                self.words = f"the launcher on {self.host} died ({how})"
        return self.words
