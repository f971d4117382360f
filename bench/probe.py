"""Run parallux's CLI in this process, and its local launchers, measured from inside: CPU time of each, and with
``--profile`` a cProfile of every thread of parallux and of the launcher (bench/dispatch.py --profile uses it).

    python bench/probe.py OUT_PREFIX [--profile] -- PARALLUX_ARGS...

writes ``OUT_PREFIX.parallux.json`` (the process's own CPU seconds, user and system, all threads) and, with
``--profile``, ``OUT_PREFIX.parallux.pstats``; each local launcher writes ``OUT_PREFIX.launcher.<pid>.json``
(and ``.pstats``) the same way: this file is also the launcher's entry point (``--launcher``), started in
place of ``_launcher.py`` by patching ``parallux._prespawn.LAUNCHER_ARGV``. Standard library only, as the
launcher must be: it runs with ``python -I -S``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading


def cpu_seconds() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"user": usage.ru_utime, "system": usage.ru_stime}


def write_json(path: str, data: dict[str, object]) -> None:
    with open(path, "w") as f:
        json.dump(data, f)


class ThreadProfiles:
    """A cProfile per thread: the main thread's now, every thread started later its own (the engine thread,
    the display thread), so that the merged statistics cover the whole process."""

    def __init__(self) -> None:
        import cProfile
        self.make = cProfile.Profile
        self.profiles: list[object] = []
        threading.setprofile(self._start_in_thread)
        self._start_in_thread()

    def _start_in_thread(self, *_: object) -> None:
        profile = self.make()
        self.profiles.append(profile)
        profile.enable()  # (replaces this hook in the new thread)

    def dump(self, path: str) -> None:
        import pstats
        threading.setprofile(None)  # type: ignore[arg-type]
        for profile in self.profiles:
            profile.disable()  # type: ignore[attr-defined]
        stats = pstats.Stats(self.profiles[0])  # type: ignore[arg-type]
        for profile in self.profiles[1:]:
            try:
                stats.add(profile)  # type: ignore[arg-type]
            except TypeError:  # a thread that never ran a Python call: no statistics
                pass
        stats.dump_stats(path)


def launcher_main(prefix: str, profile: bool, launcher_path: str) -> None:
    sys.path.insert(0, os.path.dirname(launcher_path))
    import _launcher  # type: ignore[import-not-found]
    profiles = ThreadProfiles() if profile else None
    try:
        _launcher.main()  # the guardian never returns from it; the launcher does, at its end
    finally:
        out = f"{prefix}.launcher.{os.getpid()}"
        write_json(out + ".json", cpu_seconds())
        if profiles is not None:
            profiles.dump(out + ".pstats")
        sys.stderr.flush()
        os._exit(0)


def parallux_main(prefix: str, profile: bool, argv: list[str]) -> int:
    from parallux import _prespawn
    from parallux._cli import main
    _prespawn.LAUNCHER_ARGV[:] = [sys.executable, "-I", "-S", os.path.abspath(__file__), "--launcher", prefix,
                                  "--profile" if profile else "--cpu", _prespawn.LAUNCHER_PATH]
    profiles = ThreadProfiles() if profile else None
    try:
        return main(argv)
    finally:
        write_json(prefix + ".parallux.json", cpu_seconds())
        if profiles is not None:
            profiles.dump(prefix + ".parallux.pstats")


if __name__ == "__main__":
    if sys.argv[1] == "--launcher":
        launcher_main(sys.argv[2], sys.argv[3] == "--profile", sys.argv[4])
    args = sys.argv[1:]
    split = args.index("--")
    sys.exit(parallux_main(args[0], "--profile" in args[1:split], args[split + 1:]))
