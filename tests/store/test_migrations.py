"""The Alembic migrations produce exactly the schema tables.py declares."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from millstream.store import Store
from millstream.store.engine import current_revision, head_revision
from millstream.store.tables import metadata


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrations_match_the_declared_tables(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    store = Store(url)
    assert store.migrate() == head_revision()
    assert store.migrate() == head_revision()  # idempotent
    with store.engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
    assert diff == []
    store.dispose()
