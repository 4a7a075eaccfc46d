"""Airflow 3.3's ``/api/v2/connections``: list, read, create, patch, delete, the bulk
``PATCH``, ``POST /connections/test`` and ``POST /connections/defaults``, over the same
encrypted store functions as ``/api/v1/connections`` (:mod:`millstream.store.secret_values`).

Answers never hold a password: it is ``***`` when one is set, ``null`` when not, and the
extra's sensitive fields are ``***``, as Airflow masks them. A PATCH that sends ``***``
back keeps the stored value (Airflow's ``merge``).

Testing a connection makes the API server reach whatever host the request names, so, as
in Airflow, it answers 403 unless ``[core] test_connection`` is ``Enabled``; when it is,
Millstream's hooks (``Connection.test_connection``, what ``millstream connections test``
runs) do the test. Millstream has no default connections and no worker-side test queue:
``/connections/defaults`` and ``/connections/enqueue-test`` refuse with the reason.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Response

from millstream.api.deps import SettingsDep, StoreDep
from millstream.api.routes.connections import _hide
from millstream.api.schemas import SECRET_KEY_PATTERN
from millstream.api.v2.common import EditUser, OrderBy, PagingDep, ReadUser, sort_rows
from millstream.api.v2.common import order_by as parse_order
from millstream.api.v2.secrets_models import (
    BulkActionOnExistence,
    BulkActionResponse,
    BulkBody,
    BulkCreateAction,
    BulkDeleteAction,
    BulkResponse,
    BulkUpdateAction,
    ConnectionBody,
    ConnectionCollectionResponse,
    ConnectionResponse,
    ConnectionTestResponse,
    NamePattern,
    NamePrefix,
    entity_ids,
    fail_if_existing,
    fail_if_missing,
    merge,
    pattern_filter,
    refusal,
    renamed,
    run_bulk,
    with_tiebreak,
)
from millstream.sdk.connection import Connection
from millstream.store import secret_values as secrets_q

router = APIRouter(tags=["Connection"], prefix="/connections")

_ID = re.compile(SECRET_KEY_PATTERN)
SORTABLE = ("conn_id", "conn_type", "description", "host", "port", "id", "team_name")
#: Body fields copied as they are (the password and extra are merged with the stored ones).
PLAIN = ("conn_type", "description", "host", "login", "schema", "port")
#: How Airflow's bulk messages name connections.
CONN_IDS = "connections with these connection_ids"
TEST_DISABLED = (
    "Testing connections is disabled in Airflow configuration. Contact your deployment admin to enable it."
)


def _missing(connection_id: str) -> HTTPException:
    return HTTPException(404, f"The Connection with connection_id: `{connection_id}` was not found")


def _answer(c: Connection) -> ConnectionResponse:
    return ConnectionResponse.model_validate(
        {
            "conn_id": c.conn_id,
            "conn_type": c.conn_type or "",
            "description": c.description,
            "host": c.host,
            "login": c.login,
            "schema": c.schema,
            "port": c.port,
            "password": c.password,
            "extra": c.extra,
            "team_name": None,
        }
    )


def _fields(c: Connection) -> dict[str, Any]:
    return {k: getattr(c, k) for k in (*PLAIN, "password", "extra")}


def _storable(body: ConnectionBody) -> None:
    """What Millstream's store cannot keep, refused before anything is written."""
    if not _ID.match(body.connection_id):
        raise refusal(
            f"Millstream cannot store the connection_id `{body.connection_id}`: an id is 1 to 250 ASCII "
            "letters, digits, '_', '-' or '.'"
        )
    if not body.conn_type:
        raise refusal(f"Connection `{body.connection_id}` needs a conn_type: Millstream picks its hook by it")


def _new(body: ConnectionBody) -> Connection:
    return Connection(
        conn_id=body.connection_id,
        conn_type=body.conn_type,
        description=body.description,
        host=body.host,
        login=body.login,
        password=body.password,
        schema=body.schema_,
        port=body.port,
        extra=body.extra,
    )


def _set_fields(body: ConnectionBody) -> set[str]:
    """The body's fields by their stored names (``schema_`` is ``schema``)."""
    return {"schema" if f == "schema_" else f for f in body.model_fields_set}


def _updated(old: Connection, body: ConnectionBody, update_mask: list[str] | None = None) -> Connection:
    """Airflow's ``update_orm_from_pydantic``: the fields the body sets (those of the mask
    when given); ``***`` in the password or the extra keeps the stored value."""
    values = _fields(old)
    sent = _set_fields(body)
    plain = (sent & set(update_mask)) if update_mask else sent
    for name in PLAIN:
        if name in plain:
            values[name] = body.schema_ if name == "schema" else getattr(body, name)
    wanted = set(update_mask) if update_mask else sent
    if "password" in wanted:
        values["password"] = None if body.password is None else merge(body.password, old.password, "password")
    if "extra" in wanted:
        values["extra"] = body.extra
        if body.extra is not None and old.extra is not None:
            try:
                values["extra"] = json.dumps(merge(json.loads(body.extra), json.loads(old.extra)))
            except json.JSONDecodeError:
                pass  # an unstructured extra cannot be merged: the new one as sent
    return Connection(conn_id=old.conn_id, **values)


@router.get("", summary="Get Connections")
def get_connections(
    store: StoreDep,
    who: ReadUser,
    page: PagingDep,
    order_by: OrderBy = None,
    connection_id_pattern: NamePattern = None,
    connection_id_prefix_pattern: NamePrefix = None,
) -> ConnectionCollectionResponse:
    """Connections, passwords and secret extras masked; ``id`` orders by conn_id
    (Millstream has no numeric ids)."""
    keys = parse_order(renamed(order_by, {"connection_id": "conn_id"}), SORTABLE, "id")
    keep = pattern_filter(connection_id_pattern, connection_id_prefix_pattern)
    with store.read() as conn:
        found = [c for c in secrets_q.list_connections(conn) if keep(c.conn_id)]
    rows = [
        {**{k: getattr(c, k) for k in ("conn_id", "conn_type", "description", "host", "port")}, "c": c}
        for c in found
    ]
    for r in rows:
        r.update(id=r["conn_id"], team_name=None)
    rows = sort_rows(rows, with_tiebreak(keys, "conn_id"))  # type: ignore[assignment]
    return ConnectionCollectionResponse(
        connections=[_answer(r["c"]) for r in page.window(rows)], total_entries=len(rows)
    )


@router.get("/enqueue-test", summary="Get Connection Test")
def get_connection_test(
    who: ReadUser, connection_test_token: Annotated[str, Header(alias="Airflow-Connection-Test-Token")]
) -> None:
    """Millstream queues no connection tests, so no token is ever known (Airflow's 404)."""
    raise HTTPException(404, f"No connection test found for token: `{connection_test_token}`")


@router.get("/{connection_id}", summary="Get Connection")
def get_connection(connection_id: str, store: StoreDep, who: ReadUser) -> ConnectionResponse:
    with store.read() as conn:
        c = secrets_q.get_connection(conn, connection_id)
    if c is None:
        raise _missing(connection_id)
    return _answer(c)


@router.post("", status_code=201, summary="Post Connection")
def post_connection(body: ConnectionBody, store: StoreDep, who: EditUser) -> ConnectionResponse:
    _storable(body)
    with store.begin() as conn:
        if secrets_q.get_connection(conn, body.connection_id) is not None:
            # Airflow answers a duplicate with its unique-constraint handler's body.
            raise HTTPException(
                409,
                {
                    "reason": "Unique constraint violation",
                    "statement": "hidden",
                    "orig_error": "hidden",
                    "message": f"The Connection with connection_id: `{body.connection_id}` already exists",
                },
            )
        secrets_q.set_connection(conn, _new(body), replace=False)
        return _answer(secrets_q.get_connection(conn, body.connection_id))  # type: ignore[arg-type]


@router.patch("", summary="Bulk Connections")
def bulk_connections(body: BulkBody[ConnectionBody], store: StoreDep, who: EditUser) -> BulkResponse:
    """Create, update and delete connections in one transaction, as Airflow's
    ``BulkConnectionService`` does (an update honours the action's ``update_mask``)."""
    with store.begin() as conn:

        def existing(ids: set[str]) -> dict[str, Connection]:
            found = {i: secrets_q.get_connection(conn, i) for i in ids}
            return {i: c for i, c in found.items() if c is not None}

        def create(action: BulkCreateAction[ConnectionBody], res: BulkActionResponse) -> None:
            have = existing({e.connection_id for e in action.entities})
            fail_if_existing(action, have, CONN_IDS)
            for e in action.entities:
                _storable(e)
            skip = action.action_on_existence == BulkActionOnExistence.SKIP
            for e in action.entities:
                old = have.get(e.connection_id)
                if old is not None and skip:
                    continue
                if old is None:
                    c = _new(e)
                else:  # overwrite only the fields sent, as Airflow does (no "***" merging here)
                    values = _fields(old)
                    for name in _set_fields(e) & {*PLAIN, "password", "extra"}:
                        values[name] = e.schema_ if name == "schema" else getattr(e, name)
                    c = Connection(conn_id=old.conn_id, **values)
                secrets_q.set_connection(conn, c, replace=True)
                have[e.connection_id] = c
                res.success.append(e.connection_id)

        def update(action: BulkUpdateAction[ConnectionBody], res: BulkActionResponse) -> None:
            have = existing({e.connection_id for e in action.entities})
            fail_if_missing(action, {e.connection_id for e in action.entities} - set(have), CONN_IDS)
            for e in action.entities:
                old = have.get(e.connection_id)
                if old is not None:
                    have[e.connection_id] = c = _updated(old, e, action.update_mask)
                    secrets_q.set_connection(conn, c, replace=True)
                    res.success.append(e.connection_id)

        def delete(action: BulkDeleteAction[ConnectionBody], res: BulkActionResponse) -> None:
            ids = entity_ids(action.entities, "connection_id")
            have = existing(set(ids))
            fail_if_missing(action, set(ids) - set(have), CONN_IDS)
            for i in ids:
                if i in have:
                    secrets_q.delete_connection(conn, i)
                    res.success.append(i)

        return run_bulk(body, create, update, delete)


@router.patch("/{connection_id}", summary="Patch Connection")
def patch_connection(
    connection_id: str,
    body: ConnectionBody,
    store: StoreDep,
    who: EditUser,
    update_mask: Annotated[list[str] | None, Query()] = None,
) -> ConnectionResponse:
    if body.connection_id != connection_id:
        raise HTTPException(400, "The connection_id in the request body does not match the URL parameter")
    with store.begin() as conn:
        old = secrets_q.get_connection(conn, connection_id)
        if old is None:
            raise _missing(connection_id)
        c = _updated(old, body, update_mask)
        if not c.conn_type:
            raise refusal(f"Connection `{connection_id}` needs a conn_type: Millstream picks its hook by it")
        secrets_q.set_connection(conn, c, replace=True)
        return _answer(secrets_q.get_connection(conn, connection_id))  # type: ignore[arg-type]


@router.delete("/{connection_id}", status_code=204, summary="Delete Connection")
def delete_connection(connection_id: str, store: StoreDep, who: EditUser) -> Response:
    with store.begin() as conn:
        if secrets_q.get_connection(conn, connection_id) is None:
            raise _missing(connection_id)
        secrets_q.delete_connection(conn, connection_id)
    return Response(status_code=204)


def _same_endpoint(requested: str | int | None, stored: str | int | None) -> bool:
    """A blank host or port is no host or port (Airflow's UI sends "" for hidden fields)."""

    def norm(v: str | int | None) -> str | int | None:
        return None if v is None or v == "" else v

    return norm(requested) == norm(stored)


@router.post("/test", summary="Test Connection")
def test_connection(
    body: ConnectionBody, store: StoreDep, settings: SettingsDep, who: EditUser
) -> ConnectionTestResponse:
    """Test the connection described by the body with Millstream's hook for its type. The
    stored connection of the same id lends its hidden password and extra, only to reach its
    own host and port (Airflow's rule); the answer's message never holds them."""
    if settings.test_connection != "enabled":
        raise HTTPException(403, TEST_DISABLED)
    with store.read() as conn:
        stored = secrets_q.get_connection(conn, body.connection_id)
    if stored is not None:
        sent = _set_fields(body)
        moved = ("host" in sent and not _same_endpoint(body.host, stored.host)) or (
            "port" in sent and not _same_endpoint(body.port, stored.port)
        )
        if moved:
            own = "password" in sent and bool(body.password) and body.password != "***"
            if not own:
                raise HTTPException(
                    400,
                    "The host or port to test differs from the stored connection. "
                    "Include the credentials to test in the request body.",
                )
            stored = None
    c = _updated(stored, body) if stored is not None else _new(body)
    ok, message = c.test_connection()
    return ConnectionTestResponse(status=ok, message=_hide(message, c))


@router.post("/enqueue-test", status_code=202, summary="Enqueue Connection Test")
def enqueue_connection_test(settings: SettingsDep, who: EditUser) -> None:
    if settings.test_connection != "enabled":
        raise HTTPException(403, TEST_DISABLED)
    raise refusal(
        "Millstream cannot queue a connection test on a worker; test it on the API server with "
        "POST /api/v2/connections/test"
    )


@router.post("/defaults", status_code=204, summary="Create Default Connections")
def create_default_connections(who: EditUser) -> None:
    raise refusal(
        "Millstream has no default connections to create: Airflow's (airflow_db, aws_default, ...) are "
        "for its providers' hooks, which Millstream does not ship. Create the connections you need with "
        "POST /api/v2/connections"
    )
