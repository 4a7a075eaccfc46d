"""Variables and Connections, encrypted at rest

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "variable",
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("val", sa.Text, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("is_encrypted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "connection",
        sa.Column("conn_id", sa.String(250), primary_key=True),
        sa.Column("conn_type", sa.String(500), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("host", sa.String(500), nullable=True),
        sa.Column("schema", sa.String(500), nullable=True),
        sa.Column("login", sa.Text, nullable=True),
        sa.Column("password", sa.Text, nullable=True),
        sa.Column("port", sa.Integer, nullable=True),
        sa.Column("extra", sa.Text, nullable=True),
        sa.Column("is_encrypted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("is_extra_encrypted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("connection")
    op.drop_table("variable")
