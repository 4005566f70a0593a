"""Tools for working on reindex-fsm that are not part of the package: the local test engine
(``devtools.engine``). Standard library only, so they run with the system ``python3``
before any virtualenv exists."""
