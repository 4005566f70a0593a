"""reindex-fsm: rebuild the index behind a live alias as a persisted, resumable state machine."""

__version__ = "0.1.0"
