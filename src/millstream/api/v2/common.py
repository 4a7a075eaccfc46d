"""What every ``/api/v2`` route shares: Airflow's authentication answers, paging, ordering
and error bodies.

The v2 routes are a thin mapping of Airflow 3.3's REST API onto the same operations
(:mod:`millstream.control`) and store queries as ``/api/v1``; this module holds the parts
where Airflow's contract differs from v1's:

- errors are ``{"detail": "..."}`` (validation errors FastAPI's list), with Airflow's words;
- unknown query parameters are ignored, as Airflow (FastAPI) ignores them;
- ``limit`` defaults to 50 and is capped at 100 (Airflow's ``maximum_page_limit``);
- ``order_by`` takes several fields, ``-field`` for descending, and refuses a field it does
  not know with Airflow's 400;
- authentication: no credentials is 401 "Not authenticated", an expired JWT 401
  "Token Expired", any other bad token 403 "Invalid JWT token"; a viewer changing
  something is 403 "Forbidden".
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, NoReturn, TypeVar

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

from millstream.api.auth import SAFE_METHODS, Principal, authenticate

PREFIX = "/api/v2"
#: Airflow's ``[api] maximum_page_limit`` default: a larger ``limit`` is quietly lowered to it.
MAXIMUM_PAGE_LIMIT = 100
FALLBACK_PAGE_LIMIT = 50
MAX_SORT_PARAMS = 10

T = TypeVar("T")

_bearer = HTTPBearer(
    auto_error=False,
    description="A JWT from POST /auth/token: `Authorization: Bearer <token>`.",
)


def v2_user(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None
) -> Principal:
    who = authenticate(request)
    if not isinstance(who, Principal):
        if who.kind == "expired":
            raise HTTPException(401, "Token Expired")
        if who.kind in ("invalid", "empty"):
            raise HTTPException(403, "Invalid JWT token")
        raise HTTPException(401, "Not authenticated")
    if who.via == "session" and request.method not in SAFE_METHODS:
        sent = request.headers.get("x-csrf-token", "")
        if not sent or not secrets.compare_digest(sent, str(request.session.get("csrf", ""))):
            raise HTTPException(403, "Forbidden")
    return who


def v2_editor(who: Annotated[Principal, Depends(v2_user)]) -> Principal:
    """Changing anything needs the admin role (Airflow's viewer may only read)."""
    if not who.is_admin:
        raise HTTPException(403, "Forbidden")
    return who


ReadUser = Annotated[Principal, Depends(v2_user)]
EditUser = Annotated[Principal, Depends(v2_editor)]


@dataclass(frozen=True)
class Paging:
    limit: int
    offset: int

    def window(self, rows: Sequence[T]) -> list[T]:
        """This page of a list filtered in Python (the few-hundred-row kinds)."""
        return list(rows[self.offset : self.offset + self.limit])


def paging(
    limit: Annotated[int, Query(ge=0)] = FALLBACK_PAGE_LIMIT,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # beyond BIGINT: 422, not a 500
) -> Paging:
    return Paging(min(limit, MAXIMUM_PAGE_LIMIT), offset)


PagingDep = Annotated[Paging, Depends(paging)]


def order_by(values: Iterable[str] | None, allowed: Iterable[str], default: str) -> list[tuple[str, bool]]:
    """``order_by`` as Airflow reads it: ``[(field, descending), ...]``, checked against the
    fields this endpoint can sort on. Callers append their own tie-breaker (the primary key)."""
    given = list(values or [default])
    if len(given) > MAX_SORT_PARAMS:
        raise HTTPException(
            400, f"Ordering with more than {MAX_SORT_PARAMS} parameters is not allowed. Provided: {given}"
        )
    names = set(allowed)
    out = []
    for v in given:
        name = v.lstrip("-")
        if name not in names:
            raise HTTPException(
                400, f"Ordering with '{name}' is disallowed or the attribute does not exist on the model"
            )
        out.append((name, v.startswith("-")))
    return out


def sort_rows(rows: Sequence[Mapping[str, Any]], keys: list[tuple[str, bool]]) -> list[Mapping[str, Any]]:
    """Rows sorted in Python by ``order_by``'s keys, nulls last ascending and first
    descending, as PostgreSQL orders them (for the few-hundred-row kinds)."""
    out = list(rows)
    for name, desc in reversed(keys):
        out.sort(key=lambda r, n=name: (r.get(n) is None, _comparable(r.get(n))), reverse=desc)
    return out


def _comparable(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.timestamp()
    return v


def split_terms(value: str) -> list[str]:
    """Airflow's ``*_pattern`` alternatives: ``a|b`` is a OR b (each stripped, empty ones
    dropped); a value with no ``|``, or with only empty alternatives, is one term as it is."""
    if "|" in value:
        terms = [t.strip() for t in value.split("|") if t.strip()]
        if terms:
            return terms
    return [value]


def not_found(detail: str) -> NoReturn:
    raise HTTPException(404, detail)


class Out(BaseModel):
    """A response body: extra keys of a store row are dropped, as Airflow's models drop them."""

    model_config = ConfigDict(extra="ignore", from_attributes=True, populate_by_name=True)


# Re-exported for route modules.
OrderBy = Annotated[list[str] | None, Query(description="Fields to order by; prefix `-` for descending.")]

__all__ = [
    "PREFIX",
    "EditUser",
    "OrderBy",
    "Out",
    "PagingDep",
    "ReadUser",
    "not_found",
    "order_by",
    "sort_rows",
]
