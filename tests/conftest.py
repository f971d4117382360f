"""Shared pytest fixtures."""

from tests.sshd import sshd_bare, sshd_server  # noqa: F401
from tests.slurm import slurm_cluster, slurm_lenient  # noqa: F401
