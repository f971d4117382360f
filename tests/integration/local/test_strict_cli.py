"""The strict command line, through the real CLI: a typo never runs a campaign, and nothing goes silently
to the config that looks like it was meant for parallux."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import cli_env, run_cli, write_config

# A config that leaves a mark of having been executed, and one of having run a command.
CONFIG = """
    from pathlib import Path
    from parallux import goal
    Path("config-executed").touch()
    print("argv", goal.argv)
    goal.local(workspace="ws")
    goal.run("touch ../../command-ran", work_relpath="w")
"""


def nothing_happened(tmp_path: Path) -> bool:
    return not (tmp_path / "config-executed").exists() and not (tmp_path / "command-ran").exists()


@pytest.mark.parametrize("args, unknown, closest", [
    (["config.py", "--dryrun"], "--dryrun", "--dry-run"),
    (["config.py", "--resum"], "--resum", "--resume"),
    (["--resum", "config.py"], "--resum", "--resume"),
    (["--dry", "config.py"], "--dry", "--dry-run"),
    (["config.py", "case=1", "--verbos"], "--verbos", "--verbose"),
    (["config.py", "--retries=2", "--halts=soon"], "--halts", "--halt"),
    (["config.py", "-x"], "-x", None),
])
def test_strict_cli_unknown_option_is_a_usage_error_and_nothing_runs(
        tmp_path: Path, args: list[str], unknown: str, closest: str | None) -> None:
    write_config(tmp_path, CONFIG)
    done = run_cli(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    assert nothing_happened(tmp_path)
    assert f"unknown option {unknown!r}" in done.stderr
    if closest is not None:
        assert f"did you mean {closest}?" in done.stderr
    else:
        assert "did you mean" not in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_strict_cli_no_abbreviation_of_an_option_that_takes_a_value(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    done = run_cli(tmp_path, "--progress", "1", "config.py")
    assert done.returncode == 2 and "unknown option '--progress'" in done.stderr
    assert "did you mean --progress-interval?" in done.stderr
    assert nothing_happened(tmp_path)


def test_strict_cli_parallux_option_after_the_separator_goes_to_the_config_with_a_note(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    done = run_cli(tmp_path, "config.py", "--", "suite=int", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "argv ['suite=int', '--dry-run']"
    assert (tmp_path / "command-ran").exists()  # not a dry run: the contract gives it to the config
    notes = [line for line in done.stderr.splitlines() if "note:" in line]
    assert notes == ["parallux: note: '--dry-run' comes after '--', so it is passed to the config, "
                     "not to parallux"]
    # The note comes before the config runs, i.e. before anything the run itself reports.
    assert done.stderr.index("note:") < done.stderr.index("1 command")


def test_strict_cli_no_note_for_config_arguments_that_are_not_parallux_options(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    done = run_cli(tmp_path, "config.py", "--", "--my-flag", "-k", "case=1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "argv ['--my-flag', '-k', 'case=1']"
    assert "note:" not in done.stderr


def test_strict_cli_config_items_and_options_after_the_config_still_work(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    done = run_cli(tmp_path, "config.py", "case=hello", "--dry-run", "plain", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "argv ['case=hello', 'plain']"
    assert not (tmp_path / "command-ran").exists()  # --dry-run after CONFIG is parallux's
    done = run_cli(tmp_path, "config.py", "--log", "-odd-name.jsonl", "-qv", "--halt=soon:2")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "-odd-name.jsonl").exists()  # an option's value may begin with '-'


def test_strict_cli_usage_line_shows_the_config_arguments(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "--help")
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == "usage: parallux [OPTIONS] CONFIG [-- ARG ...]"


def shebang_config(tmp_path: Path) -> Path:
    config = write_config(tmp_path, "#!/usr/bin/env parallux\n" + CONFIG.replace("\n    ", "\n"), name="x.py")
    config.chmod(0o755)
    return config


def run_shebang(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(tmp_path, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run(["./x.py", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_strict_cli_shebang_config_is_as_strict(tmp_path: Path) -> None:
    shebang_config(tmp_path)
    done = run_shebang(tmp_path, "--dryrun")
    assert done.returncode == 2, done.stderr
    assert "unknown option '--dryrun' (did you mean --dry-run?)" in done.stderr
    assert nothing_happened(tmp_path)
    done = run_shebang(tmp_path, "--", "--resume")
    assert done.returncode == 0, done.stderr
    assert "'--resume' comes after '--'" in done.stderr
    assert done.stdout.splitlines()[0] == "argv ['--resume']"


def test_strict_cli_subcommands_take_no_abbreviations_either(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "runs", "--al")  # --all, abbreviated
    assert done.returncode == 2, done.stderr
    assert "--al" in done.stderr
    assert run_cli(tmp_path, "runs", "--all").returncode == 0
