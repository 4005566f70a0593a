"""Alembic environment of the state database (installed as reindex_fsm.migrations)."""
