"""Variables: named values that DAGs read (``Variable.get``), encrypted at rest. A variable
whose key is sensitive (``password``, ``token``, ``secret``, ...) has its value shown as
``***``, here and in the web UI."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi import Body as BodyParam
from fastapi.exceptions import RequestValidationError

from millstream.api.auth import Admin, User
from millstream.api.deps import PagingDep, StoreDep
from millstream.api.query import STRICT
from millstream.api.schemas import (
    SECRET_KEY_PATTERN,
    Page,
    SecretKeyPath,
    VariableBody,
    VariableOut,
    VariablesImported,
)
from millstream.errors import NotFoundError
from millstream.sdk.masking import MASK, is_sensitive
from millstream.store import secret_values as secrets_q

router = APIRouter(tags=["Variables"], dependencies=STRICT)

Key = SecretKeyPath
_KEY = re.compile(SECRET_KEY_PATTERN)
MAX_IMPORT = 10_000


def variable_out(row: dict[str, Any], value: str | None) -> VariableOut:
    masked = is_sensitive(row["key"])
    return VariableOut(
        key=row["key"],
        value=MASK if masked and value not in (None, "") else value,
        description=row["description"],
        masked=masked,
        updated_at=row["updated_at"],
    )


def _row(conn: Any, key: str) -> dict[str, Any]:
    for row in secrets_q.list_variables(conn, with_values=False):
        if row["key"] == key:
            return row
    raise NotFoundError(f"no variable {key!r}; GET /api/v1/variables lists them")


def read_variables(
    store: StoreDep, offset: int, limit: int, key_pattern: str | None = None
) -> tuple[list[VariableOut], int]:
    """A page of variables; only the values on the page are decrypted."""
    with store.read() as conn:
        rows = secrets_q.list_variables(conn, with_values=False)
        if key_pattern:
            rows = [r for r in rows if key_pattern in r["key"]]
        shown = rows[offset : offset + limit]
        items = [variable_out(r, secrets_q.get_variable(conn, r["key"])) for r in shown]
    return items, len(rows)


@router.get("/variables", response_model=Page[VariableOut], summary="List variables")
def list_variables(
    store: StoreDep,
    who: User,
    page: PagingDep,
    key_pattern: Annotated[str | None, Query(max_length=250, description="Part of the key.")] = None,
) -> Page[VariableOut]:
    items, total = read_variables(store, page.offset, page.limit, key_pattern)
    return page.of(items, total)


@router.post(
    "/variables/import",
    response_model=VariablesImported,
    summary="Set many variables at once: all of them, or none if one is wrong",
)
def import_variables(
    store: StoreDep,
    who: Admin,
    body: Annotated[
        dict[str, Any],
        BodyParam(
            description='Key -> value. A value that is not text is stored as its JSON; {"value": ..., '
            '"description": ...} sets both.',
            examples=[
                {
                    "region": "eu",
                    "limits": {"rows": 10},
                    "api_url": {"value": "https://x", "description": "d"},
                }
            ],
        ),
    ],
    overwrite: Annotated[bool, Query(description="Replace variables that exist (else skip them).")] = True,
) -> VariablesImported:
    values = _checked_import(body)
    with store.begin() as conn:  # one transaction: an error sets nothing
        done, skipped = secrets_q.import_variables(conn, values, overwrite=overwrite)
    return VariablesImported(imported=done, skipped=skipped)


def _checked_import(body: dict[str, Any]) -> dict[str, Any]:
    """Every entry checked before anything is written; the errors name each bad key."""
    errors: list[dict[str, Any]] = []

    def bad(key: str, message: str) -> None:
        errors.append({"loc": ("body", key), "msg": message, "type": "value_error"})

    if len(body) > MAX_IMPORT:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": f"at most {MAX_IMPORT} variables at once", "type": "value_error"}]
        )
    for key, value in body.items():
        if not _KEY.match(key):
            bad(key, "a key is 1 to 250 letters, digits, '_', '-' or '.'")
            continue
        if isinstance(value, dict) and "value" in value and set(value) <= {"value", "description"}:
            text, desc = value["value"], value.get("description")
            if desc is not None and not isinstance(desc, str):
                bad(key, "description must be text")
                continue
        else:
            text, desc = value, None
        for what, part in (("value", text), ("description", desc)):
            if part is None:
                continue
            try:
                out = part if isinstance(part, str) else json.dumps(part, allow_nan=False)
                out.encode("utf-8")
            except (ValueError, TypeError, UnicodeEncodeError) as e:
                bad(key, f"the {what} must be plain JSON text ({type(e).__name__})")
                break
            if what == "description" and "\x00" in out:
                bad(key, "the description must not contain NUL characters")
                break
    if errors:
        raise RequestValidationError(errors)
    return body


@router.get("/variables/{key}", response_model=VariableOut, summary="One variable")
def get_variable(key: Key, store: StoreDep, who: User) -> VariableOut:
    with store.read() as conn:
        row = _row(conn, key)
        value = secrets_q.get_variable(conn, key)
    return variable_out(row, value)


@router.put("/variables/{key}", response_model=VariableOut, summary="Create or change a variable")
def put_variable(key: Key, body: VariableBody, store: StoreDep, who: Admin) -> VariableOut:
    with store.begin() as conn:
        value = body.value
        if value == MASK and is_sensitive(key):  # the masked value sent back: keep the stored one
            stored = secrets_q.get_variable(conn, key)
            value = MASK if stored is None else stored
        secrets_q.set_variable(conn, key, value, body.description)
    return get_variable(key, store, who)


@router.delete("/variables/{key}", status_code=204, summary="Delete a variable")
def delete_variable(key: Key, store: StoreDep, who: Admin) -> Response:
    with store.begin() as conn:
        if not secrets_q.delete_variable(conn, key):
            raise NotFoundError(f"no variable {key!r}; GET /api/v1/variables lists them")
    return Response(status_code=204)
