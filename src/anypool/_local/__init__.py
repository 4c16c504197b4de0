"""Machinery shared by the backends that run in this machine's processes.

- ``_queue``: the task queue (FIFO, LIFO, priority) the thread and process backends drain;
- ``_deadlines``: one timer thread that fires per-task timeouts;
- ``_atexit``: the interpreter-exit hook that shuts down pools still open.
"""
