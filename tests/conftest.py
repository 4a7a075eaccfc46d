"""Shared fixtures: stores on every backend, the PostgreSQL service, a temp home."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from millstream.store import Store

PG_URL = os.environ.get("MILLSTREAM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_SERVICES = os.environ.get("MILLSTREAM_REQUIRE_SERVICES") == "1"


def _pg_available() -> str | None:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as c:
            c.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as e:  # noqa: BLE001
        return str(e).splitlines()[0]


def need_postgres() -> None:
    problem = _pg_available()
    if problem is None:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"PostgreSQL is required (MILLSTREAM_REQUIRE_SERVICES=1) but unreachable: {problem}")
    pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {problem}")


MARIADB_URL = os.environ.get("MILLSTREAM_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def need_mariadb() -> None:
    """Skip (or, under MILLSTREAM_REQUIRE_SERVICES=1, fail) without the MariaDB service."""
    try:
        engine = sa.create_engine(MARIADB_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as c:
            c.execute(sa.text("select 1"))
        engine.dispose()
        return
    except Exception as e:  # noqa: BLE001
        problem = str(e).splitlines()[0]
    if REQUIRE_SERVICES:
        pytest.fail(f"MariaDB is required (MILLSTREAM_REQUIRE_SERVICES=1) but unreachable: {problem}")
    pytest.skip(f"MariaDB not reachable at {MARIADB_URL}: {problem}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    need_postgres()
    schema = f"ms_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as c:
        c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        s = Store.memory()
    elif request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'ms.db'}")
        s.migrate()
    else:
        url = request.getfixturevalue("pg_url")
        s = Store(url)
        s.migrate()
    return s


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same store contract on every backend, schema made by the migrations."""
    s = _make_store(request, tmp_path)
    yield s
    s.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Backends that several connections (threads, processes) can share at once."""
    s = _make_store(request, tmp_path)
    yield s
    s.dispose()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("MILLSTREAM_HOME", str(h))
    monkeypatch.delenv("MILLSTREAM_DAGS_FOLDER", raising=False)
    monkeypatch.delenv("MILLSTREAM_DATABASE_URL", raising=False)
    return h


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _own_api_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `standalone` a test starts serves its API on a port of its own, never on a
    developer's 8080."""
    monkeypatch.setenv("MILLSTREAM__API__PORT", str(free_port()))


@pytest.fixture(autouse=True)
def _default_secrets_backends() -> Iterator[None]:
    """Every test starts with the configured store as the last secrets backend: an API app
    or worker made in-process by an earlier test binds its own store for the process."""
    import millstream.store as store_pkg
    from millstream.sdk import secrets

    store_pkg._register_metastore()
    secrets.reset()
    yield
    secrets.reset()
