"""APIs built on ``Pool``: named pools and ``@anypool.task`` (``_named``), pipelines,
the drop-in ``concurrent.futures`` executors and ``anypool.Process``."""
