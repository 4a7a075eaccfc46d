"""pools, and a counter that tells schedulers a run was cleared

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pool = op.create_table(
        "pool",
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_pool")),
    )
    op.bulk_insert(pool, [{"name": "default_pool", "slots": 128, "description": "tasks without a pool"}])
    with op.batch_alter_table("dag_run") as batch_op:
        batch_op.add_column(sa.Column("clear_number", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("dag_run") as batch_op:
        batch_op.drop_column("clear_number")
    op.drop_table("pool")
