"""Everything that crosses a process or machine boundary as bytes.

- ``_pickle``: pickle with the cloudpickle fallback, the function cache, remote
  tracebacks (``RemoteTraceback``) and finding the unpicklable part of a call;
- ``_shm``: large buffers out of band (pickle protocol 5) in memfd segments, for the
  process backend;
- ``_remote``: the payload format Dask and Ray tasks carry and the outcome they return.
"""
