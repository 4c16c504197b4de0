"""The process backend: a dispatcher thread in the parent, one pipe per worker child.

- ``_protocol``: the wire format both sides speak (frames, flags, the segment that
  follows a frame with out-of-band buffers);
- ``_dispatcher``: the parent side (``ProcessBackend``), which owns the workers;
- ``_child``: the loop each worker process runs.

This ``__init__`` stays empty: a spawned worker imports the package on its way to
``_child`` and must not pay for the dispatcher.
"""
