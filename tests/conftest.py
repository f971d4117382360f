"""Shared pytest fixtures."""

from tests.sshd import sshd_bare, sshd_server  # noqa: F401
