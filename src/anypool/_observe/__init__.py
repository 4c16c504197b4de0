"""Recorders the engine feeds: statistics (``_stats``), the timeline (``_timeline``) and
the progress bar (``_progress``). They know tasks and futures, never ``Pool``."""
