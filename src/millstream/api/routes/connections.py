"""Connections: where external systems are and how to log in to them (Airflow's fields),
with the password and extra encrypted at rest.

A connection's password is never returned: it is ``"***"`` when one is set (``null``
when not), and a PUT that omits it or sends ``"***"`` keeps the stored one. Values under
sensitive names in the extra are ``"***"`` too, and sending ``"***"`` back keeps them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from millstream.api.auth import Admin, User
from millstream.api.deps import PagingDep, StoreDep
from millstream.api.query import STRICT
from millstream.api.schemas import (
    ConnectionBody,
    ConnectionOut,
    ConnectionTested,
    Page,
    SecretKeyPath,
)
from millstream.errors import NotFoundError
from millstream.sdk.connection import Connection
from millstream.sdk.masking import MASK, redact
from millstream.store import secret_values as secrets_q

router = APIRouter(tags=["Connections"], dependencies=STRICT)

ConnId = SecretKeyPath


def connection_out(c: Connection) -> ConnectionOut:
    extra: dict[str, Any] | str | None = None
    if c.extra:
        parsed = c.extra_dejson
        # Text that is not a JSON object cannot be searched for secrets: hidden whole.
        extra = redact(parsed) if parsed or c.extra.strip() == "{}" else MASK
    return ConnectionOut(
        conn_id=c.conn_id,
        conn_type=c.conn_type or "",
        description=c.description,
        host=c.host,
        schema=c.schema,
        login=c.login,
        password=MASK if c.password else None,
        port=c.port,
        extra=extra,
    )


def _get(conn: Any, conn_id: str) -> Connection:
    c = secrets_q.get_connection(conn, conn_id)
    if c is None:
        raise NotFoundError(f"no connection {conn_id!r}; GET /api/v1/connections lists them")
    return c


def read_connections(
    store: StoreDep, offset: int, limit: int, conn_id_pattern: str | None = None
) -> tuple[list[ConnectionOut], int]:
    with store.read() as conn:
        rows = secrets_q.list_connections(conn)
    if conn_id_pattern:
        rows = [c for c in rows if conn_id_pattern in c.conn_id]
    return [connection_out(c) for c in rows[offset : offset + limit]], len(rows)


@router.get("/connections", response_model=Page[ConnectionOut], summary="List connections")
def list_connections(
    store: StoreDep,
    who: User,
    page: PagingDep,
    conn_id_pattern: Annotated[str | None, Query(max_length=250, description="Part of the id.")] = None,
) -> Page[ConnectionOut]:
    items, total = read_connections(store, page.offset, page.limit, conn_id_pattern)
    return page.of(items, total)


@router.get("/connections/{conn_id}", response_model=ConnectionOut, summary="One connection")
def get_connection(conn_id: ConnId, store: StoreDep, who: User) -> ConnectionOut:
    with store.read() as conn:
        return connection_out(_get(conn, conn_id))


def _keep_masked(new: Any, old: Any) -> Any:
    """``new`` with each ``"***"`` that stands for a hidden value of ``old`` put back."""
    if not isinstance(new, dict) or not isinstance(old, dict):
        return new
    out = {}
    for k, v in new.items():
        if v == MASK and k in old and redact(old[k], str(k)) == MASK:
            out[k] = old[k]
        else:
            out[k] = _keep_masked(v, old.get(k))
    return out


@router.put("/connections/{conn_id}", response_model=ConnectionOut, summary="Create or replace a connection")
def put_connection(conn_id: ConnId, body: ConnectionBody, store: StoreDep, who: Admin) -> ConnectionOut:
    with store.begin() as conn:
        old = secrets_q.get_connection(conn, conn_id)
        password = body.password
        if ("password" not in body.model_fields_set or password == MASK) and old is not None:
            password = old.password
        elif password == MASK:
            password = None  # nothing stored to keep
        extra = body.extra
        if extra is not None and old is not None:
            extra = _keep_masked(extra, old.extra_dejson)
        c = Connection(
            conn_id=conn_id,
            conn_type=body.conn_type,
            description=body.description,
            host=body.host,
            schema=body.schema_,
            login=body.login,
            password=password,
            port=body.port,
            extra=extra,
        )
        secrets_q.set_connection(conn, c, replace=True)
        return connection_out(_get(conn, conn_id))


@router.delete("/connections/{conn_id}", status_code=204, summary="Delete a connection")
def delete_connection(conn_id: ConnId, store: StoreDep, who: Admin) -> Response:
    with store.begin() as conn:
        secrets_q.delete_connection(conn, conn_id)
    return Response(status_code=204)


@router.post(
    "/connections/{conn_id}/test",
    response_model=ConnectionTested,
    summary="Ask the connection's hook to reach the system",
)
def test_connection(conn_id: ConnId, store: StoreDep, who: Admin) -> ConnectionTested:
    with store.read() as conn:
        c = _get(conn, conn_id)
    try:
        ok, message = c.test_connection()
    except Exception as e:  # noqa: BLE001 - a hook that cannot even be made is an answer too
        ok, message = False, f"{type(e).__name__}: {e}"
    return ConnectionTested(status=ok, message=_hide(message, c))


def _hide(message: str, c: Connection) -> str:
    """``message`` without the connection's password or its extra's secret values."""
    secrets = [c.password] if c.password else []
    hidden = c.extra_dejson
    secrets += [str(v) for k, v in hidden.items() if redact(v, str(k)) == MASK and v not in (None, "")]
    for s in sorted(secrets, key=len, reverse=True):
        if len(s) >= 3:
            message = message.replace(s, MASK)
    return redact(message)  # type: ignore[no-any-return]
