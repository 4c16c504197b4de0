"""Pure scheduling decisions: which backend ``backend="auto"`` runs on, and why.

Nothing in this package starts threads or processes or reads the clock; the
callers (:mod:`anypool._auto._router`) gather the facts and pass them in, so
every rule here is unit-tested on synthetic inputs.
"""
