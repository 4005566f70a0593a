"""runs.cluster_uuid and runs.swap_record

cluster_uuid: the UUID of the cluster the run was planned on, so that resume, abort, undo and
rethrottle refuse to act on another cluster. swap_record: what the alias swap found and left
(the target's count and identity at the swap and at every later resume of it), so that undo
can tell whether the live index changed since.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("cluster_uuid", sa.String(64)))
        batch.add_column(sa.Column("swap_record", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("swap_record")
        batch.drop_column("cluster_uuid")
