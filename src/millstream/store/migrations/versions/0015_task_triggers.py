"""deferred task instances' triggers, run by the triggerer

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_trigger",
        sa.Column("run_pk", sa.Integer, sa.ForeignKey("dag_run.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("task_id", sa.String(250), primary_key=True),
        sa.Column("map_index", sa.Integer, primary_key=True),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("try_number", sa.Integer, nullable=False),
        sa.Column("classpath", sa.String(1000), nullable=False),
        sa.Column("kwargs", sa.Text, nullable=False),
        sa.Column("method_name", sa.String(250), nullable=False),
        sa.Column("next_kwargs", sa.Text, nullable=False),
        sa.Column("timeout_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("triggerer_id", sa.String(250), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event", sa.Text, nullable=True),
        sa.Column("failure", sa.Text, nullable=True),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resumed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_task_trigger_triggerer", "task_trigger", ["triggerer_id"])
    op.create_index("ix_task_trigger_fired", "task_trigger", ["fired_at"])
    op.create_index("ix_task_trigger_timeout", "task_trigger", ["timeout_at"])
    op.create_index("ix_task_trigger_classpath", "task_trigger", ["classpath"])


def downgrade() -> None:
    for name in ("classpath", "timeout", "fired", "triggerer"):
        op.drop_index(f"ix_task_trigger_{name}", "task_trigger")
    op.drop_table("task_trigger")
