"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from alembic import op
import sqlalchemy as sa


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dag",
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("fileloc", sa.Text(), server_default="", nullable=False),
        sa.Column("is_paused", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("latest_version_id", sa.Integer(), nullable=True),
        sa.Column("timetable_summary", sa.String(length=100), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("next_run_logical_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_run_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_parsed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("dag_id", name=op.f("pk_dag")),
    )
    op.create_table(
        "dag_version",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dag_version")),
        sa.UniqueConstraint(
            "dag_id",
            "version_number",
            name=op.f("uq_dag_version_dag_id_version_number"),
        ),
    )
    op.create_table(
        "import_error",
        sa.Column("filename", sa.String(length=1000), nullable=False),
        sa.Column("lineno", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("stacktrace", sa.Text(), server_default="", nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("filename", name=op.f("pk_import_error")),
    )
    op.create_table(
        "dag_run",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("dag_version_id", sa.Integer(), nullable=False),
        sa.Column("run_type", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("logical_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("data_interval_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("data_interval_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("conf", sa.JSON(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("start_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dag_version_id"],
            ["dag_version.id"],
            name=op.f("fk_dag_run_dag_version_id_dag_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dag_run")),
        sa.UniqueConstraint("dag_id", "run_id", name=op.f("uq_dag_run_dag_id_run_id")),
    )
    with op.batch_alter_table("dag_run", schema=None) as batch_op:
        batch_op.create_index("ix_dag_run_state_dag_id", ["state", "dag_id"], unique=False)

    op.create_table(
        "task_instance",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("try_number", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_tries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("start_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("hostname", sa.String(length=250), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("pool", sa.String(length=250), nullable=True),
        sa.Column("priority_weight", sa.Integer(), server_default="1", nullable=False),
        sa.Column("next_retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("label", sa.String(length=1000), nullable=True),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_pk"],
            ["dag_run.id"],
            name=op.f("fk_task_instance_run_pk_dag_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_pk", "task_id", "map_index", name=op.f("pk_task_instance")),
    )
    with op.batch_alter_table("task_instance", schema=None) as batch_op:
        batch_op.create_index("ix_task_instance_dag_id_state", ["dag_id", "state"], unique=False)

    op.create_table(
        "task_result",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=True),
        sa.Column("type_name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_pk"],
            ["dag_run.id"],
            name=op.f("fk_task_result_run_pk_dag_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_pk", "task_id", "map_index", "key", name=op.f("pk_task_result")),
    )


def downgrade() -> None:
    op.drop_table("task_result")
    with op.batch_alter_table("task_instance", schema=None) as batch_op:
        batch_op.drop_index("ix_task_instance_dag_id_state")

    op.drop_table("task_instance")
    with op.batch_alter_table("dag_run", schema=None) as batch_op:
        batch_op.drop_index("ix_dag_run_state_dag_id")

    op.drop_table("dag_run")
    op.drop_table("import_error")
    op.drop_table("dag_version")
    op.drop_table("dag")
