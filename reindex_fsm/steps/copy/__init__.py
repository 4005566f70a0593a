"""REINDEXING: the copy strategies, each behind :class:`~.base.CopyStrategy`.

``base.py`` holds the protocol, ``registry.py`` the strategies by name (a new strategy is
its own module and one line there), ``reindex.py`` the server-side ``_reindex`` copy,
``recompute.py`` (with ``stream.py``) the client-side copy that embeds documents again,
``readers.py`` the inputs it reads. This package's ``__init__`` imports nothing, so that
the plan can use the readers' field names without loading the strategies.
"""
