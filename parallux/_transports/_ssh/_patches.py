"""What importing the SSH stack takes, done once: asyncssh imported without running a compiler, and the main
thread's asyncio policy kept plain.

Every module of the SSH transport imports ``asyncssh`` and ``trio_asyncio`` from here, so the patch below is
in place whichever of them is imported first. Importing trio_asyncio replaces asyncio's loop policy for the
whole process; :func:`_keep_plain_asyncio_in_main_thread` gives the main thread its ordinary policy back, so
a config that calls ``asyncio.run()`` itself still gets a plain asyncio loop.
"""

from __future__ import annotations

import asyncio
import ctypes.util
import os
import sys
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["asyncssh", "trio_asyncio"]

LOADER_CACHE = "/etc/ld.so.cache"
# where ``ld -l`` looks besides LD_LIBRARY_PATH (plus the multiarch subdirectories, on Debian)
LINKER_DIRS = ("/usr/local/lib", "/lib", "/usr/lib", "/usr/local/lib64", "/lib64", "/usr/lib64")


def _surely_absent(name: str) -> bool:
    """No library ``lib<name>`` that ctypes.util.find_library could find: not in the loader's cache (whose
    bytes hold every cached soname) and no ``lib<name>.so`` where ``ld -l<name>`` would look. A stat per
    directory and one read, instead of the ``ldconfig -p`` and ``ld -t`` runs find_library makes."""
    try:
        with open(LOADER_CACHE, "rb") as f:
            if f"lib{name}.".encode() in f.read():
                return False
    except OSError:
        return False  # no cache to read: ask the slow way
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    multiarch = getattr(sys.implementation, "_multiarch", None)
    for base in LINKER_DIRS:
        dirs.append(base)
        if multiarch:
            dirs.append(f"{base}/{multiarch}")
    return not any(os.path.exists(os.path.join(d, f"lib{name}.so")) for d in dirs)


@contextmanager
def _library_lookup_without_compiler() -> Iterator[None]:
    """While asyncssh is imported, look shared libraries up without running a compiler or a linker.

    Importing asyncssh probes for nettle and (twice) for liboqs with ``ctypes.util.find_library``, which runs
    ``ldconfig -p`` and, for a library the loader's cache does not know -- liboqs usually is not installed --
    ``ld -t`` or gcc: ~20 ms of a start-up that matters for SSH runners. A library that is surely absent is
    answered at once (:func:`_surely_absent`); any other is looked up as before, in the loader's cache and
    then with ``ld -t`` but never gcc. ``ctypes.CDLL`` of the found name searches the same places, so the
    answer only differs for a library the loader could not open by that name anyway."""
    util: Any = ctypes.util
    in_cache = getattr(util, "_findSoname_ldconfig", None)
    by_ld = getattr(util, "_findLib_ld", None)
    soname = getattr(util, "_get_soname", None)
    if in_cache is None or by_ld is None or soname is None:  # another platform or Python: leave it alone
        yield
        return
    original = util.find_library
    util.find_library = lambda name: None if _surely_absent(name) else in_cache(name) or soname(by_ld(name))
    try:
        yield
    finally:
        util.find_library = original


def _third_party_warnings_silenced() -> None:
    """A user's terminal shows parallux's own words, never a dependency's: the newest ``cryptography``
    warns (``CryptographyDeprecationWarning: DSA is deprecated``) while asyncssh imports it, and may warn
    again when asyncssh calls it. Installed for the whole process, after the import; by class, so that every
    other warning, parallux's own included, stays visible."""
    try:
        from cryptography.utils import CryptographyDeprecationWarning
    except ImportError:  # an older or newer cryptography without that class: nothing of it to silence
        return
    warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning)


with _library_lookup_without_compiler(), warnings.catch_warnings():
    # whatever asyncssh and its dependencies warn of while they import is theirs, not the user's
    warnings.simplefilter("ignore")
    import asyncssh
_third_party_warnings_silenced()
import trio_asyncio  # noqa: E402  (after asyncssh, as before)


def _keep_plain_asyncio_in_main_thread() -> None:
    """trio_asyncio, once imported, hands every thread outside Trio its own loop policy. A config runs in
    the main thread and may call ``asyncio.run()``: give that thread back the policy it had."""
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        asyncio.set_event_loop_policy(asyncio.get_event_loop_policy())
    except RuntimeError:  # already a Trio context, or trio_asyncio's own policy: nothing to restore
        pass


_keep_plain_asyncio_in_main_thread()
