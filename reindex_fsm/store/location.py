"""Where the state database is: the default file and a path or URL as a SQLAlchemy URL
(no SQLAlchemy needed for either)."""

from __future__ import annotations

DEFAULT_STATE_DB = "sqlite:///state/reindex_fsm.db"


def state_db_url(url_or_path: str) -> str:
    """A state database as a SQLAlchemy URL: a bare path (no ``://``) is a SQLite file.
    Which one (--state-db, REINDEX_FSM_STATE_DB, the default) is reindex_fsm.config's
    to resolve."""
    if "://" not in url_or_path:
        return f"sqlite:///{url_or_path}"
    return url_or_path
