"""Looking at runs: ``parallux runs|show|report|export|compare``, built on the run logs alone.

The views read files only, so they work on a run still going (from a second terminal) and on one that was
killed. They import nothing of the CLI, the session, the engine or the runners, nor anything that imports Trio:
``parallux show`` starts in a few tens of milliseconds and needs no runner. Their only imports outside this
package are the leaves ``_errors``, ``_exit``, ``_durations`` and ``_statedir``.
"""

# The words of ``parallux WORD ...``. Here, in a module that imports nothing, because the CLI tests every
# command line against them before it decides to import either the views or the engine.
SUBCOMMANDS = ("runs", "show", "report", "export", "compare")
