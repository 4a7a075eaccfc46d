"""Airflow 3.3's ``/api/v2/variables``: list, read, create, patch, delete and the bulk
``PATCH``, over the same encrypted store functions as ``/api/v1/variables``
(:mod:`millstream.store.secret_values`).

Values are masked as Airflow masks them (:class:`.secrets_models.VariableResponse`): a
sensitive key's value is ``***`` (inside a JSON value, each string), and a JSON value's
sensitive fields are ``***`` whatever the key. Like Airflow's, a PATCH stores what it is
sent, ``***`` included. Keys Millstream cannot store (it keeps Airflow's documented
characters only: letters, digits, ``_``, ``-``, ``.``) are refused with a 400 that says so.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from sqlalchemy import Connection as DbConnection

from millstream.api.deps import StoreDep
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
    NamePattern,
    NamePrefix,
    VariableBody,
    VariableCollectionResponse,
    VariableResponse,
    entity_ids,
    fail_if_existing,
    fail_if_missing,
    id_set,
    pattern_filter,
    refusal,
    run_bulk,
    with_tiebreak,
)
from millstream.store import secret_values as secrets_q

router = APIRouter(tags=["Variable"], prefix="/variables")

_KEY = re.compile(SECRET_KEY_PATTERN)
#: How Airflow's bulk messages name them.
VAR_KEYS = "variables with these keys"
SORTABLE = ("key", "id", "_val", "description", "is_encrypted", "team_name")


def _missing(key: str) -> HTTPException:
    return HTTPException(404, f"The Variable with key: `{key}` was not found")


def _rows(conn: DbConnection) -> dict[str, dict[str, Any]]:
    """Every variable without its value (only the ones answered are decrypted)."""
    return {r["key"]: r for r in secrets_q.list_variables(conn, with_values=False)}


def _row(conn: DbConnection, key: str) -> dict[str, Any] | None:
    return _rows(conn).get(key)


def _answer(conn: DbConnection, row: dict[str, Any]) -> VariableResponse:
    return VariableResponse.model_validate(
        {
            "key": row["key"],
            "value": secrets_q.get_variable(conn, row["key"]),
            "description": row["description"],
            "is_encrypted": row["is_encrypted"],
            "team_name": None,
        }
    )


def _storable(key: str) -> None:
    if not _KEY.match(key):
        raise refusal(
            f"Millstream cannot store the variable key `{key}`: a key is 1 to 250 letters, digits, "
            "'_', '-' or '.'"
        )


def _write(conn: DbConnection, body: VariableBody, exists: bool) -> None:
    """Airflow's ``Variable.set``: the value and the description as sent (none clears it)."""
    value = str(body.value)
    if exists:
        secrets_q.update_variable(conn, body.key, value=value, description=body.description)
    else:
        secrets_q.set_variable(conn, body.key, value, body.description)


def _patch(conn: DbConnection, body: VariableBody, update_mask: list[str] | None) -> None:
    """Airflow's ``update_orm_from_pydantic``: the fields the body sets (those of the mask,
    if one is given); ``key`` cannot change."""
    fields = set(body.model_fields_set)
    if update_mask:
        if "key" in update_mask:
            raise HTTPException(
                400,
                "Update not allowed: the following fields are immutable and cannot be modified: "
                f"{id_set(['key'])}",
            )
        fields &= set(update_mask)
    changes: dict[str, Any] = {}
    if "value" in fields:
        changes["value"] = str(body.value)
    if "description" in fields:
        changes["description"] = body.description
    secrets_q.update_variable(conn, body.key, **changes)


@router.get("", summary="Get Variables")
def get_variables(
    store: StoreDep,
    who: ReadUser,
    page: PagingDep,
    order_by: OrderBy = None,
    variable_key_pattern: NamePattern = None,
    variable_key_prefix_pattern: NamePrefix = None,
) -> VariableCollectionResponse:
    """Variables, values masked; ``id`` orders by key (Millstream has no numeric ids)."""
    keys = parse_order(order_by, SORTABLE, "id")
    if any(name == "_val" for name, _ in keys):
        raise refusal("Millstream cannot order variables by `_val`: values are encrypted at rest")
    keep = pattern_filter(variable_key_pattern, variable_key_prefix_pattern)
    with store.read() as conn:
        rows = [{**r, "id": r["key"], "team_name": None} for r in _rows(conn).values() if keep(r["key"])]
        rows = sort_rows(rows, with_tiebreak(keys, "key"))  # type: ignore[assignment]
        shown = [_answer(conn, r) for r in page.window(rows)]
    return VariableCollectionResponse(variables=shown, total_entries=len(rows))


@router.get("/{variable_key:path}", summary="Get Variable")
def get_variable(variable_key: str, store: StoreDep, who: ReadUser) -> VariableResponse:
    with store.read() as conn:
        row = _row(conn, variable_key)
        if row is None:
            raise _missing(variable_key)
        return _answer(conn, row)


@router.post("", status_code=201, summary="Post Variable")
def post_variable(body: VariableBody, store: StoreDep, who: EditUser) -> VariableResponse:
    _storable(body.key)
    with store.begin() as conn:
        if _row(conn, body.key) is not None:
            raise HTTPException(409, f"The Variable with key: `{body.key}` already exists")
        _write(conn, body, exists=False)
        return _answer(conn, _row(conn, body.key))  # type: ignore[arg-type]


@router.patch("/{variable_key:path}", summary="Patch Variable")
def patch_variable(
    variable_key: str,
    body: VariableBody,
    store: StoreDep,
    who: EditUser,
    update_mask: Annotated[list[str] | None, Query()] = None,
) -> VariableResponse:
    if body.key != variable_key:
        raise HTTPException(400, "Invalid body, key from request body doesn't match uri parameter")
    with store.begin() as conn:
        if _row(conn, variable_key) is None:
            raise _missing(variable_key)
        _patch(conn, body, update_mask)
        return _answer(conn, _row(conn, variable_key))  # type: ignore[arg-type]


@router.delete("/{variable_key:path}", status_code=204, summary="Delete Variable")
def delete_variable(variable_key: str, store: StoreDep, who: EditUser) -> Response:
    with store.begin() as conn:
        if not secrets_q.delete_variable(conn, variable_key):
            raise _missing(variable_key)
    return Response(status_code=204)


@router.patch("", summary="Bulk Variables")
def bulk_variables(body: BulkBody[VariableBody], store: StoreDep, who: EditUser) -> BulkResponse:
    """Create, update and delete variables in one transaction, as Airflow's
    ``BulkVariableService`` does: each action's failure is reported in its part of the answer."""
    with store.begin() as conn:

        def create(action: BulkCreateAction[VariableBody], res: BulkActionResponse) -> None:
            existing = set(_rows(conn))
            wanted = {e.key for e in action.entities}
            matched = wanted & existing
            fail_if_existing(action, matched, VAR_KEYS)
            for e in action.entities:
                _storable(e.key)
            skip = action.action_on_existence == BulkActionOnExistence.SKIP
            for e in action.entities:
                if skip and e.key in matched:
                    continue
                _write(conn, e, exists=e.key in existing)
                existing.add(e.key)
                res.success.append(e.key)

        def update(action: BulkUpdateAction[VariableBody], res: BulkActionResponse) -> None:
            existing = set(_rows(conn))
            fail_if_missing(action, {e.key for e in action.entities} - existing, VAR_KEYS)
            for e in action.entities:
                if e.key in existing:
                    _patch(conn, e, action.update_mask)
                    res.success.append(e.key)

        def delete(action: BulkDeleteAction[VariableBody], res: BulkActionResponse) -> None:
            keys = entity_ids(action.entities, "key")
            fail_if_missing(action, set(keys) - set(_rows(conn)), VAR_KEYS)
            for key in keys:
                if secrets_q.delete_variable(conn, key):
                    res.success.append(key)

        return run_bulk(body, create, update, delete)
