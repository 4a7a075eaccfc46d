"""Opening the database: SQLite (WAL) by default, PostgreSQL by URL; running migrations."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

MIGRATIONS = Path(__file__).parent / "migrations"
MEMORY_URL = "sqlite://"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers (workers reading inputs, the CLI) work while the scheduler writes;
    # NORMAL sync is durable across process crashes, which is what WAL promises.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    _enable_wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _enable_wal(cur: Any) -> None:
    """Switch a database to WAL once; it stays WAL for every later connection.

    Switching needs an exclusive lock and SQLite reports "database is locked" at once
    (without waiting for busy_timeout) when two processes open a new database together,
    so a locked switch is retried for a while.
    """
    if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
        return
    deadline = time.monotonic() + 30
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_begin(conn: sa.Connection) -> None:
    # A write transaction takes the write lock up front (BEGIN IMMEDIATE). A deferred one
    # that upgrades from read to write can fail at once with "database is locked" when
    # another process committed meanwhile, without waiting for busy_timeout.
    write = conn.get_execution_options().get("millstream_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; ``sqlite://`` is a private in-memory database."""
    if url.startswith("sqlite"):
        if url in ("sqlite://", "sqlite:///:memory:"):
            engine = sa.create_engine(
                MEMORY_URL,
                poolclass=StaticPool,
                connect_args={"check_same_thread": False},
            )
        else:
            path = url.split("///", 1)[-1]
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take control so that a
        # transaction really starts when SQLAlchemy begins one (needed for correct locking).
        sa.event.listen(engine, "connect", lambda c, r: setattr(c, "isolation_level", None))
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def alembic_config(connection: sa.Connection) -> Any:
    from alembic.config import Config  # imported only when needed: it is slow to import

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine) -> str:
    """Bring the schema to the newest revision; returns the revision now applied."""
    from alembic import command

    with engine.connect() as conn:
        # Two processes may migrate at once (a scheduler starting while a CLI command
        # runs): take the database's write lock first, so the second waits and then finds
        # the schema already at head.
        conn.execution_options(millstream_write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7210419)")
            command.upgrade(alembic_config(conn), "head")
            return current_revision(conn) or ""


def current_revision(conn: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head
