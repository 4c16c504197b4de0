"""The engine: ``Pool`` and what it is made of.

- ``_pool``: ``Pool``'s public surface; ``_coordination`` and ``_observe``: its parts
  for primitives, timers and decorators, and for statistics and timelines;
- ``_admission``: max_pending, join counting, callbacks; ``_map``: the lazy, bounded map;
  ``_drain``: maps nobody iterated; ``_aio``: await / async for / async with;
- ``_decorators``: ``TaskFunction``; ``_progress``: the progress-bar map; ``_timers``.
"""
