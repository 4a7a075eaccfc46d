"""result references: large results live in an object store

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_result") as batch_op:
        batch_op.add_column(sa.Column("ref", sa.String(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_result") as batch_op:
        batch_op.drop_column("ref")
