"""Variables and Connections in the store, encrypted at rest, and the secrets backend
that reads them (the last of the chain in :mod:`millstream.sdk.secrets`)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection as DbConnection

from millstream.errors import ConflictError, NotFoundError
from millstream.sdk.connection import Connection
from millstream.sdk.secrets import SecretsBackend
from millstream.store import crypto
from millstream.store.tables import connection, variable

if TYPE_CHECKING:
    from millstream.store import Store

_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,250}$")


def _check_key(kind: str, key: str) -> None:
    if not _KEY.match(key or ""):
        raise ConflictError(
            f"{kind} {key!r}: use 1 to 250 letters, digits, '_', '-' or '.' (as Airflow does)"
        )


# -- variables --------------------------------------------------------------------------


def set_variable(conn: DbConnection, key: str, value: str, description: str | None = None) -> None:
    _check_key("variable", key)
    if not isinstance(value, str):
        raise ConflictError(f"variable {key!r}: the value must be text (serialize it as JSON first)")
    row = {
        "val": crypto.encrypt(value),
        "is_encrypted": True,
        "updated_at": datetime.now(UTC),
    }
    if description is not None:
        row["description"] = description
    done = conn.execute(variable.update().where(variable.c.key == key).values(**row)).rowcount
    if not done:
        conn.execute(variable.insert().values(key=key, **{"description": description, **row}))


_KEEP: Any = object()


def update_variable(conn: DbConnection, key: str, *, value: Any = _KEEP, description: Any = _KEEP) -> bool:
    """Change only the given fields of variable ``key`` (a ``None`` description clears it,
    where :func:`set_variable` keeps it): whether the variable exists."""
    row: dict[str, Any] = {"updated_at": datetime.now(UTC)}
    if value is not _KEEP:
        if not isinstance(value, str):
            raise ConflictError(f"variable {key!r}: the value must be text (serialize it as JSON first)")
        row.update(val=crypto.encrypt(value), is_encrypted=True)
    if description is not _KEEP:
        row["description"] = description
    return bool(conn.execute(variable.update().where(variable.c.key == key).values(**row)).rowcount)


def _val(row: Mapping[str, Any]) -> str | None:
    if row["val"] is None or not row["is_encrypted"]:
        return row["val"]
    return crypto.decrypt(row["val"], f"variable {row['key']!r}")


def get_variable(conn: DbConnection, key: str) -> str | None:
    row = conn.execute(sa.select(variable).where(variable.c.key == key)).mappings().first()
    return None if row is None else _val(row)


def list_variables(conn: DbConnection, *, with_values: bool = True) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(variable).order_by(variable.c.key)).mappings()
    return [
        {
            "key": r["key"],
            "value": _val(r) if with_values else None,
            "description": r["description"],
            "is_encrypted": r["is_encrypted"],
            "updated_at": r["updated_at"],
        }
        for r in rows
    ]


def delete_variable(conn: DbConnection, key: str) -> int:
    return int(conn.execute(variable.delete().where(variable.c.key == key)).rowcount)


def import_variables(
    conn: DbConnection, values: Mapping[str, Any], *, overwrite: bool = True
) -> tuple[int, int]:
    """Set many variables in the caller's transaction: (set, skipped). A value that is not
    text is stored as its JSON, as Airflow's import does."""
    done = skipped = 0
    for key, value in values.items():
        if not overwrite and get_variable(conn, key) is not None:
            skipped += 1
            continue
        if isinstance(value, dict) and set(value) <= {"value", "description"} and "value" in value:
            text, desc = value["value"], value.get("description")
        else:
            text, desc = value, None
        set_variable(conn, key, text if isinstance(text, str) else json.dumps(text), desc)
        done += 1
    return done, skipped


# -- connections ------------------------------------------------------------------------


def set_connection(conn: DbConnection, c: Connection, *, replace: bool = True) -> None:
    _check_key("connection", c.conn_id)
    if not c.conn_type:
        raise ConflictError(f"connection {c.conn_id!r} needs a conn_type")
    row = {
        "conn_type": c.conn_type,
        "description": c.description,
        "host": c.host,
        "schema": c.schema,
        "login": c.login,
        "password": None if c.password is None else crypto.encrypt(c.password),
        "port": c.port,
        "extra": None if c.extra is None else crypto.encrypt(c.extra),
        "is_encrypted": c.password is not None,
        "is_extra_encrypted": c.extra is not None,
        "updated_at": datetime.now(UTC),
    }
    exists = conn.execute(sa.select(connection.c.conn_id).where(connection.c.conn_id == c.conn_id)).first()
    if exists and not replace:
        raise ConflictError(f"connection {c.conn_id!r} already exists; delete it first or use `--overwrite`")
    if exists:
        conn.execute(connection.update().where(connection.c.conn_id == c.conn_id).values(**row))
    else:
        conn.execute(connection.insert().values(conn_id=c.conn_id, **row))


def _conn(row: Mapping[str, Any]) -> Connection:
    what = f"connection {row['conn_id']!r}"
    password, extra = row["password"], row["extra"]
    if password is not None and row["is_encrypted"]:
        password = crypto.decrypt(password, f"the password of {what}")
    if extra is not None and row["is_extra_encrypted"]:
        extra = crypto.decrypt(extra, f"the extra of {what}")
    return Connection(
        conn_id=row["conn_id"],
        conn_type=row["conn_type"],
        description=row["description"],
        host=row["host"],
        schema=row["schema"],
        login=row["login"],
        password=password,
        port=row["port"],
        extra=extra,
    )


def get_connection(conn: DbConnection, conn_id: str) -> Connection | None:
    row = conn.execute(sa.select(connection).where(connection.c.conn_id == conn_id)).mappings().first()
    return None if row is None else _conn(row)


def list_connections(conn: DbConnection) -> list[Connection]:
    return [_conn(r) for r in conn.execute(sa.select(connection).order_by(connection.c.conn_id)).mappings()]


def delete_connection(conn: DbConnection, conn_id: str) -> None:
    if not conn.execute(connection.delete().where(connection.c.conn_id == conn_id)).rowcount:
        raise NotFoundError(f"no connection {conn_id!r}; `millstream connections list` shows them")


def import_connections(conn: DbConnection, items: Iterable[Connection], *, overwrite: bool = False) -> int:
    n = 0
    for c in items:
        set_connection(conn, c, replace=overwrite)
        n += 1
    return n


# -- key rotation -----------------------------------------------------------------------


def rotate(conn: DbConnection) -> tuple[int, int]:
    """Re-encrypt every stored secret with the first key (values written before a key
    existed, unencrypted, get encrypted): (variables, connections) rewritten."""
    cipher = crypto.fernet()
    nv = nc = 0
    for r in conn.execute(sa.select(variable).where(variable.c.val.is_not(None))).mappings().all():
        new = cipher.rotate(r["val"].encode()).decode() if r["is_encrypted"] else crypto.encrypt(r["val"])
        conn.execute(variable.update().where(variable.c.key == r["key"]).values(val=new, is_encrypted=True))
        nv += 1
    for r in conn.execute(sa.select(connection)).mappings().all():
        values: dict[str, Any] = {}
        for col, flag in (("password", "is_encrypted"), ("extra", "is_extra_encrypted")):
            if r[col] is None:
                continue
            values[col] = cipher.rotate(r[col].encode()).decode() if r[flag] else crypto.encrypt(r[col])
            values[flag] = True
        if values:
            conn.execute(connection.update().where(connection.c.conn_id == r["conn_id"]).values(**values))
            nc += 1
    return nv, nc


# -- the backend ------------------------------------------------------------------------


class MetastoreBackend(SecretsBackend):
    """The store as a secrets backend, and the one that ``Variable.set`` writes to.

    ``opener(create)`` gives the store (the configured database unless a process bound its
    own); it may give ``None`` for a SQLite file that does not exist yet, which, like a
    database not migrated yet, simply holds no secrets.
    """

    name = "metastore"
    writable = True

    def __init__(
        self,
        opener: Callable[[bool], Store | None],
        ensure: Callable[[Store], None] = lambda store: None,
    ) -> None:
        self._opener = opener
        self._ensure = ensure
        self._store: Store | None = None
        self._lock = threading.Lock()
        self._ready: bool | None = None

    def store(self, *, create: bool = False) -> Store | None:
        with self._lock:
            if self._store is None:
                self._store = self._opener(create)
            return self._store

    def _read(self, fn: Any, key: str) -> Any:
        store = self.store()
        if store is None:
            return None
        if not self._ready:
            with store.read() as conn:
                self._ready = sa.inspect(conn).has_table("variable")
            if not self._ready:
                return None
        with store.read() as conn:
            return fn(conn, key)

    def get_variable(self, key: str) -> str | None:
        return self._read(get_variable, key)  # type: ignore[no-any-return]

    def get_conn_value(self, conn_id: str) -> str | None:
        c = self._read(get_connection, conn_id)
        return None if c is None else json.dumps(c.to_dict(prune_empty=True))

    def _write(self) -> Store:
        store = self.store(create=True)
        assert store is not None
        self._ensure(store)
        self._ready = True
        return store

    def set_variable(self, key: str, value: str, description: str | None = None) -> None:
        with self._write().begin() as conn:
            set_variable(conn, key, value, description)

    def delete_variable(self, key: str) -> int:
        with self._write().begin() as conn:
            return delete_variable(conn, key)


def install(factory: Callable[[], MetastoreBackend]) -> None:
    """Make the backends ``factory`` makes this process's store of secrets, last in the
    chain (a new one each time the chain is rebuilt, so a changed setting is seen)."""
    from millstream.sdk import secrets

    secrets.register_metastore(factory)


def bind_store(store: Store) -> None:
    """Read this process's secrets from ``store`` (a worker or API server's own store)."""
    install(lambda: MetastoreBackend(lambda create: store))
