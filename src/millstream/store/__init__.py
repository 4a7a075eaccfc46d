"""Persistence: SQLAlchemy 2 Core tables, Alembic migrations, one query module per aggregate."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.engine import Engine

from millstream.store.engine import make_engine, migrate


class Store:
    """The database: an engine plus the way to open a transaction on it."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or make_engine(url)

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
        with self.engine.connect() as conn:
            conn.execution_options(millstream_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


__all__ = ["Store", "make_engine", "migrate"]
