"""Transports: how the engine reaches a runner's launcher. A transport yields a ``Pipe`` to a launcher (a pair
of byte streams, and what its carrier knows of it) and knows nothing of commands, slots or files; everything
else is the seat's (``_engine._seat``).

- ``_local``: a child process's pipes (``python -I -S _launcher.py``);
- ``_ssh``: one channel of one SSH connection (the only code that imports asyncssh/asyncio);
- ``_plan``: a launcher inside parallux that runs nothing and answers "planned" -- the dry run, and the
  test double of the engine's unit tests.
"""

from ._base import Transport as Transport
