"""run-level retries count their attempts; deadline callbacks fire once

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dag_run") as batch_op:
        batch_op.add_column(sa.Column("attempt", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("deadlines_fired", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dag_run") as batch_op:
        batch_op.drop_column("deadlines_fired")
        batch_op.drop_column("attempt")
