"""How an SSH runner's launcher starts, tried on local shells: the boot command survives every login shell, and
importing asyncssh looks up an absent library without running a program.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from parallux._transports._boot import BOOT, boot_command


def test_boot_command_survives_every_login_shell(tmp_path: Path) -> None:
    assert not set(BOOT) & set("$`\\\"'!")
    request = b'{"op":"hello"}\n'
    shells = [shell for shell in ("sh", "bash", "dash", "zsh", "ksh", "csh", "tcsh", "fish")
              if os.path.exists(f"/bin/{shell}") or os.path.exists(f"/usr/bin/{shell}")]
    assert "sh" in shells
    for shell in shells:
        done = subprocess.run([shell, "-c", boot_command(sys.executable)], input=request, capture_output=True,
                              timeout=20, cwd=tmp_path)
        assert done.returncode == 0, (shell, done.stderr)
        hello = json.loads(done.stdout.splitlines()[0])
        assert hello["ev"] == "hello" and hello["cwd"] == str(tmp_path), shell


def test_library_lookup_during_the_asyncssh_import_runs_no_program_for_an_absent_library(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # asyncssh probes for liboqs (usually absent) at import; ctypes.util.find_library would run ldconfig and
    # ld (or gcc) for it. Within the lookup parallux installs, an absent library costs no process at all,
    # while one the loader knows (libc) is still found.
    import ctypes.util

    from parallux._transports._ssh import _patches as _ssh

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args}")

    absent = f"parallux-absent-{uuid.uuid4().hex}"
    assert _ssh._surely_absent(absent)
    assert not _ssh._surely_absent("c")
    with _ssh._library_lookup_without_compiler():
        with monkeypatch.context() as patch:
            patch.setattr(subprocess, "Popen", no_process)
            assert ctypes.util.find_library(absent) is None
        assert ctypes.util.find_library("c") is not None
    # A library file where ld would look counts as present, even when the loader's cache does not list it.
    (tmp_path / f"lib{absent}.so").write_bytes(b"")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    assert not _ssh._surely_absent(absent)
