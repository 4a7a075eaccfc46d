"""dag display name and owner links: Airflow's dag_display_name and owner_links

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dag") as batch_op:
        batch_op.add_column(sa.Column("display_name", sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column("owner_links", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dag") as batch_op:
        batch_op.drop_column("owner_links")
        batch_op.drop_column("display_name")
