"""The exception tree (``_exceptions``) and the errors of the process backend (``_process``:
broken pools, crashed workers, tasks that do not unpickle). The lowest layer: it imports
nothing else from anypool."""
