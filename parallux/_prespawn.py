"""A local launcher started before parallux imports Trio, so that the two start-ups overlap.

Python and the launcher's imports take tens of milliseconds, as does importing Trio; a config almost always
creates a local runner first. The CLI therefore starts one launcher at once, and the first local runner
adopts it -- unless the config changed the environment or the working directory in the meantime, since a
launcher gives its commands the environment and start directory it was started with. Standard library only:
this runs before anything heavy is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

LAUNCHER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_launcher.py")
LAUNCHER_ARGV = [sys.executable, "-I", "-S", LAUNCHER_PATH]


class Prespawned:
    def __init__(self) -> None:
        self.environ = dict(os.environ)
        self.cwd = os.getcwd()
        self.process = start_launcher()

    def still_fits(self) -> bool:
        return (self.process.poll() is None and os.environ == self.environ  # type: ignore[comparison-overlap]
                and os.getcwd() == self.cwd)

    def discard(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]
        self.process.stdout.close()  # type: ignore[union-attr]
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stderr.close()  # type: ignore[union-attr]


def start_launcher(env: dict[str, str] | None = None, cwd: str | None = None) -> subprocess.Popen[bytes]:
    """A local launcher child with pipes on its stdin and stdout, in this process's environment and directory
    or the given ones (raises OSError if it cannot start).

    Its stderr is an unnamed temporary file, ``process.stderr`` (read by ``_transports._local`` when the
    launcher has ended), never the user's: the launcher and its guardian can outlive parallux by their
    commands' grace, or while a child the config forked keeps their stdin open, and must not keep
    ``parallux config.py 2>&1 | tee out`` waiting meanwhile."""
    said = tempfile.TemporaryFile()
    try:
        process = subprocess.Popen(LAUNCHER_ARGV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=said,
                                   env=env, cwd=cwd)
    except BaseException:
        said.close()
        raise
    process.stderr = said  # type: ignore[assignment]
    return process


_waiting: Prespawned | None = None


def start() -> None:
    global _waiting
    try:
        _waiting = Prespawned()
    except OSError:
        _waiting = None  # the runner will start its own and report the error


def claim() -> subprocess.Popen[bytes] | None:
    """The waiting launcher, if it still matches this process's environment and directory; else None."""
    global _waiting
    waiting, _waiting = _waiting, None
    if waiting is None:
        return None
    if not waiting.still_fits():
        waiting.discard()
        return None
    return waiting.process


def discard() -> None:
    """End a launcher no runner adopted."""
    global _waiting
    waiting, _waiting = _waiting, None
    if waiting is not None:
        waiting.discard()
