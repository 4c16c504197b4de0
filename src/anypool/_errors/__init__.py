"""The exception tree (``_exceptions``) and the process-specific errors and exit
diagnoses (``_process``). The lowest layer: it imports nothing else from anypool."""
