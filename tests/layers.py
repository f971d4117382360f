"""Which layer each test belongs to (issue 22, "tests by layer"), and the guard that keeps unit tests honest.

``unit``: in-process -- doubles, the plan transport, Trio's autojump clock; no process started. Everything
else is ``integration``, with what it runs against: ``local`` (the real CLI or launcher as processes on this
machine), ``ssh`` (the test sshd), ``slurm`` (the test Slurm), ``browser`` (a real Chromium). A test's layer
comes, first to last, from: its own layer marks; the fixtures it requests (an SSH, Slurm or browser fixture
makes it an integration test against that, whatever its file says) and a parameter whose value is ``"ssh"``
(the SSH case of a test run on both a local and an SSH runner); ``TESTS``, by test; ``FILES``, by file. A
test none of these place is an error at collection: a new test file adds its line to ``FILES``.

A unit test that starts a process fails (``NoProcesses``), so a misplaced test cannot hide in the fast
layer; tests/test_layout.py checks the table and what each unit test names.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any, Callable, Iterable

import pytest

INTEGRATION = ("local", "ssh", "slurm", "browser")
LAYERS = ("unit", "integration", *INTEGRATION)

# what requesting one of these fixtures makes a test an integration test against
FIXTURES = {"sshd_server": "ssh", "sshd_bare": "ssh", "ssh_client_home": "ssh",
            "slurm_cluster": "slurm", "slurm_lenient": "slurm"}

FILES = {
    "test_after.py": "unit",
    "test_after_cli.py": "local",
    "test_bench_campaign.py": "local",
    "test_bench_views.py": "local",
    "test_benchmarks.py": "local",
    "test_campaign.py": "local",
    "test_clean.py": "local",
    "test_cli.py": "local",
    "test_config_args.py": "local",
    "test_cores.py": "unit",
    "test_docs.py": "unit",
    "test_engine.py": "unit",
    "test_environment.py": "local",
    "test_examples.py": "local",
    "test_forks.py": "local",
    "test_history.py": "local",
    "test_gpu_check.py": "local",
    "test_gpus.py": "local",
    "test_hunt.py": "local",
    "test_keywords.py": "local",
    "test_launcher.py": "local",
    "test_launcher_attach.py": "local",
    "test_launcher_death.py": "local",
    "test_launcher_restart.py": "local",
    "test_lifeline.py": "unit",
    "test_layout.py": "unit",
    "test_leaks.py": "local",
    "test_live.py": "local",
    "test_machine_cores.py": "unit",
    "test_machine_facts.py": "unit",
    "test_machine_views.py": "local",
    "test_memory_limits.py": "local",
    "test_memory_pool.py": "local",
    "test_metrics.py": "local",
    "test_nul_bytes.py": "local",
    "test_numa.py": "local",
    "test_option_tables.py": "unit",
    "test_packaging.py": "unit",
    "test_protocol.py": "unit",
    "test_provenance.py": "local",
    "test_real_cpus.py": "local",
    "test_report_browser.py": "browser",
    "test_resources.py": "unit",
    "test_resume.py": "unit",
    "test_runner_views.py": "unit",
    "test_run_experience.py": "local",
    "test_run_logs.py": "local",
    "test_run_reports.py": "local",
    "test_scale_memory.py": "unit",
    "test_scheduler.py": "unit",
    "test_shared_machines.py": "local",
    "test_significance.py": "unit",
    "test_slurm.py": "slurm",
    "test_slurm_fixture.py": "slurm",
    "test_slurm_gpus.py": "unit",
    "test_slurm_reach.py": "slurm",
    "test_slurm_reasons.py": "unit",
    "test_slurm_sandbox.py": "slurm",
    "test_ssh.py": "local",  # its tests on the sshd request it; the rest start local launchers
    "test_ssh_checks.py": "ssh",
    "test_ssh_reconnect.py": "local",
    "test_sshd_fixture.py": "ssh",
    "test_stats.py": "unit",
    "test_strict_cli.py": "local",
    "test_transfer.py": "unit",  # its SSH tests request the sshd; the local ones transfer in-process
    "test_transfer_safety.py": "unit",
    "test_validation.py": "local",
    "test_view_outputs.py": "local",
    "test_workdir_links.py": "local",
    "test_workloads.py": "unit",
}

# tests whose layer is not their file's (file::function, every parameter of it)
TESTS = {
    "test_environment.py::test_environment_reads_every_field_from_the_tree": "unit",
    "test_environment.py::test_environment_frequency_fields_describe_the_cpus_asked": "unit",
    "test_environment.py::test_environment_turbo_from_cpufreq_boost_and_isolcpus_from_the_command_line": "unit",
    "test_environment.py::test_environment_of_an_empty_tree_is_unknown_not_an_error": "unit",
    "test_environment.py::test_environment_findings_name_every_slow_governor_and_the_split_cores": "unit",
    "test_history.py::test_assign_slots_packs_each_runner_into_as_many_lanes_as_ran_at_once": "unit",
    "test_launcher_attach.py::test_Journal_spills_to_a_file_and_replays_from_it": "unit",
    "test_launcher_attach.py::test_Redelivery_numbers_what_must_arrive_and_sends_again_what_did_not": "unit",
    # these collect the whole suite in-process; importing every test module starts processes (ldconfig)
    "test_layout.py::test_layout_every_test_has_exactly_one_layer": "local",
    "test_layout.py::test_layout_unit_tests_name_nothing_that_starts_processes": "local",
    "test_machine_facts.py::test_machine_facts_hello_reports_identity_and_siblings": "local",
    "test_machine_facts.py::test_machine_facts_hello_on_the_real_machine": "local",
    "test_machine_facts.py::test_machine_facts_launcher_affinity_and_the_cpus_a_command_is_spawned_on": "local",
    "test_machine_views.py::test_schema_says_what_does_not_fit_in_each_new_record": "unit",
    "test_machine_views.py::test_the_first_line_that_differs_between_two_probe_outputs": "unit",
    "test_ssh.py::test_launcher_output_tells_a_silent_launcher_from_one_that_ended": "unit",
    "test_view_outputs.py::test_delimited_number_columns_stay_numbers_even_negative": "unit",
}


def placed(file: str, function: str, marks: Iterable[str], fixtures: Iterable[str],
           params: Iterable[Any]) -> set[str]:
    """The layer marks of one test: ``{"unit"}``, or ``"integration"`` with what it runs against."""
    marked = set(marks) & set(LAYERS)
    found = {FIXTURES[name] for name in fixtures if name in FIXTURES}
    found |= {"ssh" for value in params if value == "ssh"}
    if not marked and not found:
        marked = {TESTS.get(f"{file}::{function}") or FILES.get(file, "")} - {""}
    layers = marked | found
    if layers - {"unit", "integration"}:
        layers |= {"integration"}
    return layers


def layer_errors(nodeid: str, layers: set[str]) -> list[str]:
    if not layers:
        return [f"{nodeid}: no layer: add its file to FILES in tests/layers.py (or mark the test)"]
    if "unit" in layers and "integration" in layers:
        return [f"{nodeid}: both unit and integration ({', '.join(sorted(layers))})"]
    if "integration" in layers and not layers & set(INTEGRATION):
        return [f"{nodeid}: integration, but against nothing: mark it one of {', '.join(INTEGRATION)}"]
    return []


def unmarked(nodeid: str, fixtures: Iterable[str], layers: set[str]) -> list[str]:
    """After a test ran: the SSH or Slurm fixture it used (``request.getfixturevalue`` included) must be its
    layer -- collection only sees the fixtures a test names."""
    return [f"{nodeid} used {name} but is not marked {FIXTURES[name]}: give that case the mark (a parameter "
            f'"{FIXTURES[name]}", or pytest.param(..., marks=pytest.mark.{FIXTURES[name]}))'
            for name in fixtures if name in FIXTURES and FIXTURES[name] not in layers]


class StartedAProcess(AssertionError):
    pass


class NoProcesses:
    """Installed around each unit test: every way Python starts a process raises, and is remembered (so a
    refusal swallowed in a worker thread still fails the test)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, nodeid: str) -> None:
        self.nodeid = nodeid
        self.started: list[str] = []
        monkeypatch.setattr(subprocess.Popen, "_execute_child", self.refusing("subprocess"))
        for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "execv", "execve"):
            monkeypatch.setattr(os, name, self.refusing(f"os.{name}"))

    def refusing(self, how: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            self.started.append(how)
            raise StartedAProcess(f"{self.nodeid} is a unit test but started a process ({how}): place it in the "
                                  f"integration layer (tests/layers.py) or use a double")
        return refuse
