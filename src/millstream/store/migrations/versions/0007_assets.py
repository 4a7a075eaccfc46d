"""assets: asset registry, events, per-consumer queues, aliases, watcher bookkeeping

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "asset",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=1500), nullable=False),
        sa.Column("uri", sa.String(length=1500), nullable=False),
        sa.Column("asset_group", sa.String(length=250), server_default="asset", nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset")),
        sa.UniqueConstraint("name", name=op.f("uq_asset_name")),
    )
    op.create_table(
        "asset_alias",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=1500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_alias")),
        sa.UniqueConstraint("name", name=op.f("uq_asset_alias_name")),
    )
    op.create_table(
        "asset_alias_asset",
        sa.Column("alias_id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alias_id"],
            ["asset_alias.id"],
            name=op.f("fk_asset_alias_asset_alias_id_asset_alias"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["asset.id"], name=op.f("fk_asset_alias_asset_asset_id_asset"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("alias_id", "asset_id", name=op.f("pk_asset_alias_asset")),
    )
    op.create_table(
        "asset_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("timestamp", TS, nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("source_dag_id", sa.String(length=250), nullable=True),
        sa.Column("source_task_id", sa.String(length=250), nullable=True),
        sa.Column("source_run_id", sa.String(length=250), nullable=True),
        sa.Column("source_map_index", sa.Integer(), nullable=True),
        sa.Column("source_aliases", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["asset.id"], name=op.f("fk_asset_event_asset_id_asset"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_event")),
    )
    op.create_index("ix_asset_event_asset_id_id", "asset_event", ["asset_id", "id"], unique=False)
    op.create_table(
        "asset_ref",
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("key", sa.String(length=1510), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.PrimaryKeyConstraint("dag_id", "kind", "key", "task_id", name=op.f("pk_asset_ref")),
    )
    op.create_index("ix_asset_ref_key_kind", "asset_ref", ["key", "kind"], unique=False)
    op.create_table(
        "asset_queue",
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=1510), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["asset_event.id"],
            name=op.f("fk_asset_queue_event_id_asset_event"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dag_id", "event_id", "key", name=op.f("pk_asset_queue")),
    )
    op.create_table(
        "dag_run_asset_event",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["dag_run.id"], name=op.f("fk_dag_run_asset_event_run_pk_dag_run"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["asset_event.id"],
            name=op.f("fk_dag_run_asset_event_event_id_asset_event"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_pk", "event_id", name=op.f("pk_dag_run_asset_event")),
    )
    op.create_table(
        "watcher_file",
        sa.Column("watcher", sa.String(length=64), nullable=False),
        sa.Column("path_key", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime", sa.Float(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("reported_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("watcher", "path_key", name=op.f("pk_watcher_file")),
    )


def downgrade() -> None:
    for name in (
        "watcher_file",
        "dag_run_asset_event",
        "asset_queue",
        "asset_ref",
        "asset_event",
        "asset_alias_asset",
        "asset_alias",
        "asset",
    ):
        op.drop_table(name)
