"""Persistence: SQLAlchemy 2 Core tables, Alembic migrations, one query module per aggregate."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Engine

from millstream.errors import MillstreamError
from millstream.store.engine import current_revision, head_revision, make_engine, migrate


class _WriteGate:
    """Writers to one SQLite file queue on an OS file lock before BEGIN IMMEDIATE.

    SQLite makes a blocked writer poll with growing sleeps (up to 100 ms each), so a
    process committing many short transactions (the API or `assets emit` in a loop) can
    keep the scheduler waiting for hundreds of milliseconds. A blocking ``flock`` wakes the
    next writer the moment the lock is free. Re-entrant per thread, so a nested write
    transaction falls back to SQLite's own locking instead of waiting on itself.
    """

    def __init__(self, db_path: str) -> None:
        self.path = f"{db_path}-writelock"
        self._local = threading.local()

    @contextmanager
    def hold(self) -> Iterator[None]:
        if getattr(self._local, "held", False):
            yield
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._acquire(fd)  # released by close()
            self._local.held = True
            yield
        finally:
            self._local.held = False
            os.close(fd)

    @staticmethod
    def _acquire(fd: int, timeout: float = 30.0) -> None:
        """Poll every millisecond or so rather than block: a writer stuck holding the
        lock (a stopped CLI process) then gives "database is locked" after ``timeout``,
        as SQLite's busy timeout would, instead of hanging the scheduler."""
        deadline = time.monotonic() + timeout
        pause = 0.0002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"database is locked: another process held the write lock for {timeout:.0f}s"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.002)


class Store:
    """The database: an engine plus the way to open a transaction on it."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or make_engine(url)
        path = url.split("///", 1)[-1] if url.startswith("sqlite:///") else ""
        self._gate = _WriteGate(path) if path and path != ":memory:" else None

    @classmethod
    def memory(cls) -> Store:
        """A private in-memory SQLite store, migrated like any other: for ``dags test``."""
        store = cls("sqlite://")
        store.migrate()
        return store

    def migrate(self) -> str:
        return migrate(self.engine)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction: committed at the end of the block, rolled back on error."""
        with self._gate.hold() if self._gate else nullcontext(), self.engine.connect() as conn:
            conn.execution_options(millstream_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def ensure_schema(store: Store) -> None:
    """SQLite databases are migrated on first use; others need ``millstream db migrate``."""
    with store.read() as conn:
        current = current_revision(conn)
    if current == head_revision():
        return
    if store.url.startswith("sqlite"):
        store.migrate()
        return
    raise MillstreamError(
        f"the database schema is at revision {current or 'none'}, not {head_revision()}; "
        "run `millstream db migrate`"
    )


__all__ = ["Store", "ensure_schema", "make_engine", "migrate"]


def _open_configured(create: bool) -> Store | None:
    """The configured database (``None`` for a SQLite file not made yet, unless ``create``)."""
    from millstream.settings import Settings

    url = Settings.load().database_url
    if url.startswith("sqlite:///") and not create and not os.path.exists(url[len("sqlite:///") :]):
        return None
    return Store(url)


def default_metastore() -> Any:
    """The configured database as a secrets backend."""
    from millstream.store import secret_values

    return secret_values.MetastoreBackend(_open_configured, ensure_schema)


def _register_metastore() -> None:
    """Make the configured store the last secrets backend of every process that imports
    the engine (a worker or server binds its own with ``secret_values.bind_store``)."""
    from millstream.store import secret_values

    secret_values.install(default_metastore)


_register_metastore()
