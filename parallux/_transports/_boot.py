"""The launcher started on another machine from one command line: nothing installed there but Python.

The launcher (``_launcher.py``) travels zlib-compressed and base64-encoded as the payload argument of
``<python> -E -S -c "<boot>" <payload>``: an SSH runner sends it as one command line through the login
shell (``boot_command``), a Slurm runner as the argv of ``srun`` (``boot_argv``).
"""

from __future__ import annotations

import base64
import functools
import shlex
import zlib

from .. import _prespawn

TOO_OLD_STATUS = 86           # the boot command's exit status for a Python older than 3.6

# The boot command's program: no $, backtick, backslash, quote or ! -- it must pass through any login shell
# (bash, dash, zsh, csh, fish) unchanged inside double quotes. The launcher itself is its first argument.
BOOT = ("import base64,sys,zlib;sys.version_info<(3,6) and sys.exit(%d);"
        "exec(zlib.decompress(base64.b64decode(sys.argv[1])))" % TOO_OLD_STATUS)


def boot_command(python: str = "python3", *args: str) -> str:
    """The one remote command that starts the launcher, whatever the remote user's login shell is (``args``:
    more arguments, each a shell-safe word: ``--attach`` runs it as the bridge to a launcher that waits)."""
    return " ".join([f'{_shell_word(python)} -E -S -c "{BOOT}" {_launcher_payload()}', *map(_shell_word, args)])


def boot_argv(python: str = "python3") -> list[str]:
    """The same as an argument vector, for a starter that runs no shell (``srun``)."""
    return [python, "-E", "-S", "-c", BOOT, _launcher_payload()]


@functools.lru_cache(maxsize=1)
def _launcher_payload() -> str:
    with open(_prespawn.LAUNCHER_PATH, "rb") as f:
        return base64.b64encode(zlib.compress(f.read(), 9)).decode("ascii")


def _shell_word(word: str) -> str:
    safe = all(c.isalnum() or c in "/._-+:,@%~" for c in word)  # a leading ~ expands in every shell
    return word if safe else shlex.quote(word)
