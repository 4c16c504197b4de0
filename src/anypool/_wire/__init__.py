"""Everything that crosses a process or machine boundary as bytes.

- ``_pickle``: pickle with the cloudpickle fallback, the function cache, remote
  tracebacks (``RemoteTraceback``) and finding the unpicklable part of a call;
- ``_remote``: the payload format Dask and Ray tasks carry and the outcome they return.
"""
