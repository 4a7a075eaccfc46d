"""backfills: persisted requests to run a DAG over a range of past intervals

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backfill",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("from_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("to_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reprocess_behavior", sa.String(length=20), nullable=False),
        sa.Column("max_active_runs", sa.Integer(), nullable=False),
        sa.Column("run_backwards", sa.Boolean(), nullable=False),
        sa.Column("conf", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfill")),
    )
    with op.batch_alter_table("dag_run") as batch_op:
        batch_op.add_column(sa.Column("backfill_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("backfill_order", sa.Integer(), nullable=True))
        batch_op.create_index("ix_dag_run_backfill_id_state", ["backfill_id", "state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dag_run") as batch_op:
        batch_op.drop_index("ix_dag_run_backfill_id_state")
        batch_op.drop_column("backfill_order")
        batch_op.drop_column("backfill_id")
    op.drop_table("backfill")
