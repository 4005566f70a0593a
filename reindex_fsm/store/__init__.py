"""The state database: open it (migrating it on first use) and get its repository.

Light to import: the records (records.py) and the URL helpers are here; what needs
SQLAlchemy and Alembic (opening, migrating, the repository: database.py, repository.py)
is imported on first use, so that the CLI's start-up (``--help``, completion) and the
read-only verbs on a SQLite file (reader.py) never load them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .location import DEFAULT_STATE_DB, state_db_url
from .records import EventRecord, RunOrigin, RunRecord, utcnow

if TYPE_CHECKING:
    from .repository import RunRepository

__all__ = [
    "DEFAULT_STATE_DB",
    "EventRecord",
    "RunOrigin",
    "RunRecord",
    "RunRepository",
    "open_store",
    "redact_state_db",
    "state_db_url",
    "utcnow",
]


def open_store(url: str | None = None, *, read_only: bool = False) -> RunRepository:
    """Open the state database (see :func:`reindex_fsm.store.database.open_store`)."""
    from .database import open_store as opened

    return opened(url, read_only=read_only)


def redact_state_db(url: str) -> str:
    """The URL without credentials (see :func:`reindex_fsm.store.database.redact_state_db`)."""
    from .database import redact_state_db as redacted

    return redacted(url)


def __getattr__(name: str) -> Any:
    """The repository class and the opening internals, imported on first use."""
    if name == "RunRepository":
        from .repository import RunRepository

        return RunRepository
    if name.startswith("__") or name == "database":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    database = importlib.import_module(f"{__name__}.database")
    try:
        return getattr(database, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
