"""pinned code: each DAG version keeps the file text it came from

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dag_version") as batch_op:
        batch_op.add_column(sa.Column("source", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("source_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dag_version") as batch_op:
        batch_op.drop_column("source_hash")
        batch_op.drop_column("source")
