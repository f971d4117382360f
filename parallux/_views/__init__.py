"""Looking at runs: ``parallux runs|show|report|export|compare``, built on the run logs alone; and clearing
old runs away: ``parallux clean``.

The views read files only (``clean`` removes what the logs show is no longer needed), so they work on a run
still going (from a second terminal) and on one that was killed. They import nothing of the CLI, the session,
the engine or the runners, nor anything that imports Trio: ``parallux show`` starts in a few tens of
milliseconds and needs no runner. Their only imports outside this package are the leaves ``_errors``,
``_exit``, ``_durations``, ``_printable`` and ``_statedir``, and for ``clean`` the launcher (standard library
only), for how it tells a live work dir lock.
"""

# The words of ``parallux WORD ...``. Here, in a module that imports nothing, because the CLI tests every
# command line against them before it decides to import either the views or the engine.
SUBCOMMANDS = ("runs", "show", "report", "export", "compare", "clean")
