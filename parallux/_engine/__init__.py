"""The engine: one Trio event loop in a worker thread that owns all scheduling and I/O.

- ``_facade``: :class:`Engine`, what the main thread holds: the thread, calls into the loop, the seats, the
  settings, the observers;
- ``_tree``: the task tree and cancelling, and the halt policy;
- ``_lifecycle``: a command from submission to result (start, wait, stop on timeout or cancel, retry,
  finish), and the quarantine of a runner that cannot execute;
- ``_seat``: one runner as the engine sees it (transport, launcher client, slots, allocator, facts).
"""

from ._facade import Engine as Engine
