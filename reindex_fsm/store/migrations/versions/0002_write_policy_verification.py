"""runs.write_policy and runs.verification

write_policy: the write policy state of a run (the block it holds on its source, catch-up
passes), so that a crash leaves nothing blocked after resume or abort. verification: what the last
verification compared and found different, shown by ``show``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("write_policy", sa.JSON))
        batch.add_column(sa.Column("verification", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("verification")
        batch.drop_column("write_policy")
