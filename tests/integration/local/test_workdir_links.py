"""Nothing written through a link planted in a workspace: every file the launcher writes in a work dir, the
work dir's path below the workspace, and `.history`, through the real CLI on a local and on an SSH runner
(the real sshd fixture; the "remote" host is this machine, so a test looks at the remote files directly).

A planted link points outside the workspace, at a file that exists (it must stay as it was) or at nothing (it
must not come to exist); the link is moved aside into `.history` like any earlier output, or the command ends
`error` naming it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from parallux import _launcher
from tests import helpers
from tests.sshd import HOST_ALIAS

RUNNERS = ["local", "ssh"]
PLANTED = ["command.txt", "stdout.txt", "stderr.txt", "result.json", "result.json.tmp", _launcher.LOCK_NAME]
PRECIOUS = "precious, must stay as it is\n"

CONFIG = """
    import json
    from parallux import goal

    if goal.args["runner"] == "ssh":
        runner = goal.ssh("server", host=goal.args["host"], workspace=goal.args["ws"])
    else:
        runner = goal.local(workspace=goal.args["ws"])
    goal.setRunner([runner])
    for relpath in goal.args["dirs"].split(","):
        goal.schd("echo out-$PARALLUX_WORK_RELPATH; echo err >&2", name=relpath.replace("/", "_"),
                  work_relpath=relpath, check=False)
    for result in goal.issue().sync():
        print(json.dumps({"relpath": result.work_relpath, "status": result.status, "error": result.error}))
"""


def run(runner: str, request: pytest.FixtureRequest, tmp_path: Path, ws: Path, dirs: list[str]) -> dict[str, dict]:
    """Run one echo per work dir through the CLI; each work dir's status and error."""
    config = helpers.write_config(tmp_path, CONFIG)
    args = [str(config), "--", f"runner={runner}", f"ws={ws}", f"dirs={','.join(dirs)}"]
    env = None
    if runner == "ssh":
        env = request.getfixturevalue("sshd_server").client_env()
        args.append(f"host={HOST_ALIAS}")
    done = helpers.run_cli(tmp_path, *args, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {result["relpath"]: result for result in results}


def plant(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)


def untouched(target: Path, existed: bool) -> str | None:
    """What is wrong with a link's target after the run, or None."""
    if not existed:
        return None if not os.path.lexists(target) else f"{target} was created"
    return None if target.read_text() == PRECIOUS else f"{target} was written: {target.read_text()!r}"


def outside_target(outside: Path, name: str, exists: bool) -> Path:
    target = outside / f"{name}-{'file' if exists else 'missing'}"
    if exists:
        target.write_text(PRECIOUS)
        os.utime(target, (1_000_000_000, 1_000_000_000))
    return target


@pytest.mark.parametrize("runner", RUNNERS)
def test_launcher_moves_a_planted_link_aside_for_every_file_it_writes(
        runner: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    outside.mkdir()
    cases = {}
    for name in PLANTED:
        for exists in (True, False):
            relpath = f"{name.strip('.')}-{'file' if exists else 'missing'}"
            target = outside_target(outside, name, exists)
            plant(ws / relpath / name, target)
            cases[relpath] = (name, target, exists)

    results = run(runner, request, tmp_path, ws, list(cases))

    problems = []
    for relpath, (name, target, exists) in cases.items():
        work = ws / relpath
        problems.append(untouched(target, exists))
        if exists and os.stat(target).st_mtime != 1_000_000_000:
            problems.append(f"{target}'s mtime changed")
        if results[relpath]["status"] != "ok":
            problems.append(f"{relpath}: {results[relpath]}")
            continue
        if (work / "stdout.txt").read_text() != f"out-{relpath}\n" or (work / "stdout.txt").is_symlink():
            problems.append(f"{relpath}: stdout.txt is not the command's own")
        if json.loads((work / "result.json").read_text())["status"] != "ok" or (work / "result.json").is_symlink():
            problems.append(f"{relpath}: result.json is not its record")
        if name not in ("result.json.tmp", _launcher.LOCK_NAME):  # (temporary files are replaced, not kept)
            kept = work / ".history" / "1" / name
            if not (kept.is_symlink() and os.readlink(kept) == str(target)):
                problems.append(f"{relpath}: the planted link was not moved into .history/1")
    assert [p for p in problems if p] == [], "\n".join(p for p in problems if p)


@pytest.mark.parametrize("runner", RUNNERS)
def test_launcher_refuses_a_planted_history_link(runner: str, request: pytest.FixtureRequest,
                                                 tmp_path: Path) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    (outside / "history").mkdir(parents=True)
    cases = {"to-dir": outside / "history", "to-nothing": outside / "missing"}
    for relpath, target in cases.items():
        plant(ws / relpath / ".history", target)
        (ws / relpath / "stdout.txt").write_text("an earlier output\n")

    results = run(runner, request, tmp_path, ws, list(cases))

    for relpath in cases:
        assert results[relpath]["status"] == "error"
        assert str(ws / relpath / ".history") in results[relpath]["error"]
        assert "symbolic link" in results[relpath]["error"]
        assert (ws / relpath / "stdout.txt").read_text() == "an earlier output\n"  # left where it was
        assert not (ws / relpath / "result.json").exists()
    assert list((outside / "history").iterdir()) == []
    assert not os.path.lexists(outside / "missing")


@pytest.mark.parametrize("runner", RUNNERS)
def test_launcher_refuses_a_link_in_the_work_dirs_path_but_follows_the_workspace_link(
        runner: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    real_ws, outside = tmp_path / "scratch" / "ws", tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    real_ws.mkdir(parents=True)
    ws = tmp_path / "ws"
    os.symlink(real_ws, ws)  # the user's own link to the workspace (~/parallux -> /scratch/me): followed
    plant(ws / "a", outside / "dir")
    plant(ws / "b" / "c", outside / "missing")

    results = run(runner, request, tmp_path, ws, ["a/w", "b/c/w", "fine/w"])

    assert results["fine/w"]["status"] == "ok"
    assert (real_ws / "fine" / "w" / "stdout.txt").read_text() == "out-fine/w\n"
    for relpath, link in (("a/w", ws / "a"), ("b/c/w", ws / "b" / "c")):
        assert results[relpath]["status"] == "error"
        assert f"symbolic link {link}" in results[relpath]["error"]
    assert list((outside / "dir").iterdir()) == []
    assert not os.path.lexists(outside / "missing")


@pytest.mark.skipif(os.geteuid() != 0, reason="making a link owned by another user takes root")
@pytest.mark.parametrize("runner", RUNNERS)
def test_launcher_refuses_a_workspace_link_another_user_planted(
        runner: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    shared, victim = tmp_path / "shared", tmp_path / "victim"
    shared.mkdir()
    victim.mkdir()
    ws = shared / "ws"
    os.symlink(victim, ws)
    os.lchown(ws, 65534, 65534)  # as if user nobody had made it

    results = run(runner, request, tmp_path, ws, ["w"])

    assert results["w"]["status"] == "error"
    assert f"symbolic link {ws}" in results["w"]["error"] and "65534" in results["w"]["error"]
    assert list(victim.iterdir()) == []
