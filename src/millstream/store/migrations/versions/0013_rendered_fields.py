"""rendered fields: each attempt's template fields as they were rendered

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rendered_field",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["dag_run.id"], name=op.f("fk_rendered_field_run_pk_dag_run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint(
            "run_pk", "task_id", "map_index", "try_number", name=op.f("pk_rendered_field")
        ),
    )


def downgrade() -> None:
    op.drop_table("rendered_field")
