"""Alembic environment of the state database (reindex_fsm.store.migrations)."""
