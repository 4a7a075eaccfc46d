"""runs marked by a user finish in the marked state once their teardowns have run

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dag_run") as batch_op:
        batch_op.add_column(sa.Column("marked_state", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dag_run") as batch_op:
        batch_op.drop_column("marked_state")
