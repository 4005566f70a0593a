"""Alembic environment. Run programmatically by reindex_fsm.store.open_store, which
passes an open connection in ``config.attributes["connection"]``; from the command
line (``alembic -c alembic.ini upgrade head``) it connects to REINDEX_FSM_STATE_DB when
that is set, else to ``sqlalchemy.url``, resolved as every command resolves --state-db
(reindex_fsm.config: a bare path is a SQLite file)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from reindex_fsm.config import resolve_state_db
from reindex_fsm.store.models import Base

config = context.config
# The models, so that `alembic check` and `alembic revision --autogenerate` compare them
# with the database (server defaults included).
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_server_default=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = resolve_state_db(None, default=config.get_main_option("sqlalchemy.url"))
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
