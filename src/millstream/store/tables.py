"""Every table Millstream keeps, in one place (the Alembic migrations mirror this file;
``tests/store/test_migrations.py`` fails if they drift apart)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored as UTC and always come back timezone-aware.

    SQLite has no timezone type; without this, values would come back naive and compare
    wrongly with aware ones.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; use UTC-aware values")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


dag = sa.Table(
    "dag",
    metadata,
    sa.Column("dag_id", sa.String(250), primary_key=True),
    sa.Column("fileloc", sa.Text, nullable=False, server_default=""),
    sa.Column("is_paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("latest_version_id", sa.Integer, nullable=True),
    sa.Column("timetable_summary", sa.String(100), nullable=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("tags", sa.JSON, nullable=False, default=list),
    sa.Column("next_run_logical_date", UTCDateTime, nullable=True),
    sa.Column("next_run_after", UTCDateTime, nullable=True),
    sa.Column("last_parsed_at", UTCDateTime, nullable=True),
    sa.Column("display_name", sa.String(2000), nullable=True),  # dag_display_name
    sa.Column("owner_links", sa.JSON, nullable=True),
)

dag_version = sa.Table(
    "dag_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("version_number", sa.Integer, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # The DAG file's text this version came from: workers run a run's tasks with it.
    sa.Column("source", sa.Text, nullable=True),
    sa.Column("source_hash", sa.String(64), nullable=True),
    sa.UniqueConstraint("dag_id", "version_number"),
)

import_error = sa.Table(
    "import_error",
    metadata,
    sa.Column("filename", sa.String(1000), primary_key=True),
    sa.Column("lineno", sa.Integer, nullable=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("stacktrace", sa.Text, nullable=False, server_default=""),
    sa.Column("timestamp", UTCDateTime, nullable=False),
)

dag_run = sa.Table(
    "dag_run",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("dag_version_id", sa.Integer, sa.ForeignKey("dag_version.id"), nullable=False),
    sa.Column("run_type", sa.String(20), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("logical_date", UTCDateTime, nullable=True),
    sa.Column("data_interval_start", UTCDateTime, nullable=True),
    sa.Column("data_interval_end", UTCDateTime, nullable=True),
    sa.Column("run_after", UTCDateTime, nullable=False),
    sa.Column("conf", sa.JSON, nullable=False, default=dict),
    sa.Column("queued_at", UTCDateTime, nullable=False),
    sa.Column("start_date", UTCDateTime, nullable=True),
    sa.Column("end_date", UTCDateTime, nullable=True),
    sa.Column("state_reason", sa.Text, nullable=True),
    # Bumped by every clear: a scheduler that sees a new value reloads the run.
    sa.Column("clear_number", sa.Integer, nullable=False, server_default="0"),
    # Set when a user marks a running run: it ends in this state once teardowns have run.
    sa.Column("marked_state", sa.String(20), nullable=True),
    # Run-level retries: which attempt of the whole run this is (1 = the first).
    sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
    # Deadline callbacks already called (``run``, or a task id), so a restart never repeats them.
    sa.Column("deadlines_fired", sa.JSON, nullable=True),
    # Runs created or reprocessed by a backfill, and their place in its order.
    sa.Column("backfill_id", sa.Integer, nullable=True),
    sa.Column("backfill_order", sa.Integer, nullable=True),
    # The scheduler that plans this run while it runs (several schedulers share the runs).
    sa.Column("owner", sa.String(100), nullable=True),
    sa.UniqueConstraint("dag_id", "run_id"),
    sa.Index("ix_dag_run_state_dag_id", "state", "dag_id"),
    sa.Index("ix_dag_run_backfill_id_state", "backfill_id", "state"),
    sa.Index("ix_dag_run_state_owner", "state", "owner"),
    sa.Index("ix_dag_run_dag_id_logical_date", "dag_id", "logical_date"),  # the UI's grid
)

task_instance = sa.Table(
    "task_instance",
    metadata,
    sa.Column("run_pk", sa.Integer, sa.ForeignKey("dag_run.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("task_id", sa.String(250), primary_key=True),
    sa.Column("map_index", sa.Integer, primary_key=True),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("try_number", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_tries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("start_date", UTCDateTime, nullable=True),
    sa.Column("end_date", UTCDateTime, nullable=True),
    sa.Column("duration", sa.Float, nullable=True),
    sa.Column("hostname", sa.String(250), nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("pool", sa.String(250), nullable=True),
    sa.Column("priority_weight", sa.Integer, nullable=False, server_default="1"),
    sa.Column("next_retry_at", UTCDateTime, nullable=True),
    sa.Column("label", sa.String(1000), nullable=True),
    # When a sensor first poked: its timeout counts from here across reschedules.
    sa.Column("sensor_started_at", UTCDateTime, nullable=True),
    sa.Column("state_reason", sa.Text, nullable=True),
    sa.Index("ix_task_instance_dag_id_state", "dag_id", "state"),
)

task_result = sa.Table(
    "task_result",
    metadata,
    sa.Column("run_pk", sa.Integer, sa.ForeignKey("dag_run.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("task_id", sa.String(250), primary_key=True),
    sa.Column("map_index", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("length", sa.Integer, nullable=True),
    sa.Column("type_name", sa.String(100), nullable=False),
    # A result too large for the database: ``value`` is empty and this is where it is.
    sa.Column("ref", sa.String(2000), nullable=True),
)

# Each attempt's template fields as they were rendered (secrets masked): ``fields`` is a
# JSON object, field name -> value. Written only when a Jinja template was rendered.
rendered_field = sa.Table(
    "rendered_field",
    metadata,
    sa.Column("run_pk", sa.Integer, sa.ForeignKey("dag_run.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("task_id", sa.String(250), primary_key=True),
    sa.Column("map_index", sa.Integer, primary_key=True),
    sa.Column("try_number", sa.Integer, primary_key=True),
    sa.Column("fields", sa.Text, nullable=False),
)

# A deferred task instance's trigger: what rebuilds it (classpath, kwargs as JSON), where
# the task resumes (method_name, next_kwargs), and, once claimed, which triggerer runs it
# and when that triggerer last beat. ``event`` is set when it fired (the payload, JSON);
# ``failure`` when it raised or timed out. The row goes when the instance leaves deferred.
task_trigger = sa.Table(
    "task_trigger",
    metadata,
    sa.Column("run_pk", sa.Integer, sa.ForeignKey("dag_run.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("task_id", sa.String(250), primary_key=True),
    sa.Column("map_index", sa.Integer, primary_key=True),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("try_number", sa.Integer, nullable=False),
    sa.Column("classpath", sa.String(1000), nullable=False),
    sa.Column("kwargs", sa.Text, nullable=False),
    sa.Column("method_name", sa.String(250), nullable=False),
    sa.Column("next_kwargs", sa.Text, nullable=False),
    sa.Column("timeout_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("triggerer_id", sa.String(250), nullable=True),
    sa.Column("heartbeat_at", UTCDateTime, nullable=True),
    sa.Column("event", sa.Text, nullable=True),
    sa.Column("failure", sa.Text, nullable=True),
    sa.Column("fired_at", UTCDateTime, nullable=True),
    sa.Column("resumed_at", UTCDateTime, nullable=True),  # the scheduler acted on the event
    sa.Index("ix_task_trigger_triggerer", "triggerer_id"),
    # What the scheduler looks for each turn: fired rows, rows past their timeout, and
    # the triggers it evaluates itself; found by index, not by reading every waiting row.
    sa.Index("ix_task_trigger_fired", "fired_at"),
    sa.Index("ix_task_trigger_timeout", "timeout_at"),
    sa.Index("ix_task_trigger_classpath", "classpath"),
)

DEFAULT_POOL = "default_pool"

pool = sa.Table(
    "pool",
    metadata,
    sa.Column("name", sa.String(250), primary_key=True),
    sa.Column("slots", sa.Integer, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
)

backfill = sa.Table(
    "backfill",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("from_date", UTCDateTime, nullable=False),
    sa.Column("to_date", UTCDateTime, nullable=False),
    sa.Column("reprocess_behavior", sa.String(20), nullable=False),  # none | failed | completed
    sa.Column("max_active_runs", sa.Integer, nullable=False),
    sa.Column("run_backwards", sa.Boolean, nullable=False),
    sa.Column("conf", sa.JSON, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # running | paused | cancelled | completed
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("completed_at", UTCDateTime, nullable=True),
)

# -- assets -------------------------------------------------------------------------------

asset = sa.Table(
    "asset",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(1500), nullable=False, unique=True),
    sa.Column("uri", sa.String(1500), nullable=False),
    sa.Column("asset_group", sa.String(250), nullable=False, server_default="asset"),
    sa.Column("extra", sa.JSON, nullable=False, default=dict),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

asset_alias = sa.Table(
    "asset_alias",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(1500), nullable=False, unique=True),
)

# Which concrete assets an alias has stood for (learnt from the events emitted through it).
asset_alias_asset = sa.Table(
    "asset_alias_asset",
    metadata,
    sa.Column("alias_id", sa.Integer, sa.ForeignKey("asset_alias.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("asset_id", sa.Integer, sa.ForeignKey("asset.id", ondelete="CASCADE"), primary_key=True),
)

asset_event = sa.Table(
    "asset_event",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("asset_id", sa.Integer, sa.ForeignKey("asset.id", ondelete="CASCADE"), nullable=False),
    sa.Column("timestamp", UTCDateTime, nullable=False),
    sa.Column("extra", sa.JSON, nullable=False, default=dict),
    sa.Column("source", sa.String(20), nullable=False),  # task | external | watcher
    sa.Column("source_dag_id", sa.String(250), nullable=True),
    sa.Column("source_task_id", sa.String(250), nullable=True),
    sa.Column("source_run_id", sa.String(250), nullable=True),
    sa.Column("source_map_index", sa.Integer, nullable=True),
    sa.Column("source_aliases", sa.JSON, nullable=False, default=list),
    sa.Index("ix_asset_event_asset_id_id", "asset_id", "id"),
)

# What each DAG's latest version says about assets: ``schedule`` (the keys its condition
# names; task_id ""), ``outlet`` and ``inlet`` (per task). Rebuilt whenever a DAG is parsed.
asset_ref = sa.Table(
    "asset_ref",
    metadata,
    sa.Column("dag_id", sa.String(250), primary_key=True),
    sa.Column("kind", sa.String(10), primary_key=True),
    sa.Column("key", sa.String(1510), primary_key=True),
    sa.Column("task_id", sa.String(250), primary_key=True),
    sa.Index("ix_asset_ref_key_kind", "key", "kind"),
)

# Events a consuming DAG has not consumed yet, under the condition leaf each satisfies.
# Consuming them (creating the run, linking the events, deleting these rows) is one
# transaction: an event is never lost or counted twice, whatever is killed when.
asset_queue = sa.Table(
    "asset_queue",
    metadata,
    sa.Column("dag_id", sa.String(250), primary_key=True),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("asset_event.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.String(1510), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# The events that triggered an asset-triggered run.
dag_run_asset_event = sa.Table(
    "dag_run_asset_event",
    metadata,
    sa.Column("run_pk", sa.Integer, sa.ForeignKey("dag_run.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("asset_event.id", ondelete="CASCADE"), primary_key=True),
)

# Files a watcher has reported: never again, whatever restarts in between.
watcher_file = sa.Table(
    "watcher_file",
    metadata,
    sa.Column("watcher", sa.String(64), primary_key=True),
    sa.Column("path_key", sa.String(64), primary_key=True),  # sha256 of the path: any length
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime", sa.Float, nullable=False),
    sa.Column("event_id", sa.Integer, nullable=True),
    sa.Column("reported_at", UTCDateTime, nullable=False),
)

# Every scheduler process that ever ran, with its heartbeat: one that stops beating has
# its running runs adopted by the others.
scheduler_instance = sa.Table(
    "scheduler_instance",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("hostname", sa.String(250), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
    sa.Column("stopped_at", UTCDateTime, nullable=True),
)

# What remote workers (Celery) report about attempts: the scheduler owning the run reads
# them and deletes them once applied. ``payload`` is the pickled outcome.
attempt_report = sa.Table(
    "attempt_report",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_pk", sa.Integer, nullable=False),
    sa.Column("task_id", sa.String(250), nullable=False),
    sa.Column("map_index", sa.Integer, nullable=False),
    sa.Column("try_number", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),  # started | finished
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# A remote attempt's lease: renewed by its worker while it runs.
attempt_lease = sa.Table(
    "attempt_lease",
    metadata,
    sa.Column("run_pk", sa.Integer, primary_key=True),
    sa.Column("task_id", sa.String(250), primary_key=True),
    sa.Column("map_index", sa.Integer, primary_key=True),
    sa.Column("try_number", sa.Integer, nullable=False),
    sa.Column("hostname", sa.String(250), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
)

# -- users (the API and web UI) ------------------------------------------------------------

# People who may use the API and UI. ``role`` is admin (may change things) or viewer (reads).
app_user = sa.Table(
    "app_user",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(150), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(500), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Bumped on a password change: UI sessions signed before it stop working.
    sa.Column("session_epoch", sa.Integer, nullable=False, server_default="0"),
    sqlite_autoincrement=True,  # a deleted user's id is never given to a new one
)

# Bearer tokens for the API. Only a SHA-256 of the token is kept: the token is shown once.
api_token = sa.Table(
    "api_token",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(150), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sqlite_autoincrement=True,
)

# One row: the key that signs UI session cookies, shared by every API server on this database.
api_secret = sa.Table(
    "api_secret",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("secret", sa.String(128), nullable=False),
)

# Airflow's Variables. Values are Fernet-encrypted at rest (is_encrypted says so, so a
# value written before a key existed can still be read and is encrypted on rotation).
variable = sa.Table(
    "variable",
    metadata,
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("val", sa.Text, nullable=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("is_encrypted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Airflow's Connections; password and extra are encrypted at rest.
connection = sa.Table(
    "connection",
    metadata,
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
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
