"""Every error the API returns is JSON ``{"detail": message, "type": kind}`` with the status
code that says what went wrong; a request that is merely wrong never becomes a 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from millstream.errors import (
    ConflictError,
    DagDefinitionError,
    MillstreamError,
    NotFoundError,
    ParamValidationError,
    ScheduleError,
)

log = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[MillstreamError], int, str], ...] = (
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (ParamValidationError, 422, "invalid"),
    (ScheduleError, 422, "invalid"),
    (DagDefinitionError, 422, "invalid"),
)


def status_of(error: MillstreamError) -> tuple[int, str]:
    for kind, status, name in _STATUS:
        if isinstance(error, kind):
            return status, name
    return 400, "bad_request"


def _field(loc: tuple[Any, ...]) -> str:
    # ("body", "conf") -> "body.conf"; ("query", "limit") -> "query.limit"
    return ".".join(str(p) for p in loc) or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(MillstreamError)
    async def millstream_error(request: Request, exc: MillstreamError) -> Response:
        status, kind = status_of(exc)
        page = getattr(app.state, "error_page", None)
        if page is not None and not request.url.path.startswith("/api/"):
            return page(request, status, str(exc))  # type: ignore[no-any-return]
        return JSONResponse({"detail": str(exc), "type": kind}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(tuple(e.get("loc", ()))), "message": str(e.get("msg", "invalid"))}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return JSONResponse({"detail": detail, "type": "invalid", "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        page = getattr(app.state, "error_page", None)
        if (
            page is not None
            and not request.url.path.startswith(("/api/", "/static/"))
            and exc.status_code == 404
        ):
            return page(request, 404, "There is no such page.")  # type: ignore[no-any-return]
        kinds = {
            400: "bad_request",
            401: "unauthenticated",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            429: "too_many_requests",
        }
        return JSONResponse(
            {"detail": exc.detail, "type": kinds.get(exc.status_code, "error")},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": "internal error; the API server's log has the traceback", "type": "internal"},
            status_code=500,
        )
