"""several schedulers: run ownership and scheduler heartbeats

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_instance",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("hostname", sa.String(length=250), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduler_instance")),
    )
    with op.batch_alter_table("dag_run") as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=100), nullable=True))
        batch_op.create_index("ix_dag_run_state_owner", ["state", "owner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dag_run") as batch_op:
        batch_op.drop_index("ix_dag_run_state_owner")
        batch_op.drop_column("owner")
    op.drop_table("scheduler_instance")
