"""batches; runs.batch_id, runs.plan_path and runs.plan_hash

A batch groups ordinary runs started together (several aliases, a pattern or a plan file):
the aliases it was resolved to, its shared options and per-alias overrides, its concurrency,
slices budget and failure policy. Each run keeps its own row, lock and history; batch_id
names the batch that made it. plan_path and plan_hash: the plan file a run (or a batch) was
made from, and the SHA-256 of its bytes at the time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("items", sa.JSON, nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=False, server_default="1"),
        sa.Column("slices_budget", sa.Integer),
        sa.Column("on_failure", sa.String(16), nullable=False, server_default="stop"),
        sa.Column("engine_url", sa.Text, nullable=False),
        sa.Column("plan_path", sa.Text),
        sa.Column("plan_hash", sa.String(64)),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_batches_created_at", "batches", ["created_at"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("batch_id", sa.String(64)))
        batch.add_column(sa.Column("plan_path", sa.Text))
        batch.add_column(sa.Column("plan_hash", sa.String(64)))
        batch.create_index("ix_runs_batch_id", ["batch_id"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_batch_id")
        batch.drop_column("plan_hash")
        batch.drop_column("plan_path")
        batch.drop_column("batch_id")
    op.drop_index("ix_batches_created_at", table_name="batches")
    op.drop_table("batches")
