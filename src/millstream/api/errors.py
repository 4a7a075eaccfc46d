"""Every error the API returns is JSON ``{"detail": message, "type": kind}`` with the status
code that says what went wrong; a request that is merely wrong never becomes a 500.

Errors raised below the API (the store, :mod:`millstream.control`, params) are shared with
the CLI and worded for it: "`millstream dags list` shows the known DAGs", "--from-date ... is
after --to-date ...". :func:`for_http` rewords them for an HTTP client, which has routes and
body fields instead; the CLI keeps printing ``str(error)`` unchanged.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException

from millstream.api.prefixes import is_v2
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


#: CLI hints in messages raised below the API, and what an HTTP client does instead.
_COMMANDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"`millstream dags list-runs ([^`\s]+)`", r"GET /api/v1/dags/\1/runs"),
        (r"`millstream dags list`", "GET /api/v1/dags"),
        (r"`millstream backfill list`", "GET /api/v1/backfills"),
        (r"`millstream pools list`", "GET /api/v1/pools"),
        (r"`millstream connections list`", "GET /api/v1/connections"),
        (r"`millstream users list`", "GET /api/v1/users"),
        (r"`millstream assets list`", "GET /api/v1/assets"),
        (r"delete it first or use `--overwrite`", "delete it first (DELETE, then PUT)"),
        (r"trigger with --conf '(.*)'", r'send "conf": \1 in the request body'),
        (r"clear without --upstream/--downstream", 'clear with "upstream" and "downstream" false'),
    )
)
#: CLI options named in those messages; each is the API's field of the same name with ``_``
#: (``--from-date`` is ``from_date``, as in Airflow). Listed rather than matched by shape, so
#: that a run id or task id quoted in a message is never rewritten.
_OPTIONS = ("from-date", "to-date", "task-regex", "reprocess-behavior", "max-active-runs", "conf", "extra")
_OPTION = re.compile(r"(?:^|(?<=\s))--(" + "|".join(map(re.escape, _OPTIONS)) + r")\b(?!-)")


def for_http(message: str) -> str:
    """``message`` as an HTTP client should read it: routes for CLI commands, field names
    for CLI options. A command left in backticks is for the server's operator (`millstream
    db migrate`) and stays as it is."""
    for pattern, replacement in _COMMANDS:
        message = pattern.sub(replacement, message)
    return _OPTION.sub(lambda m: m.group(1).replace("-", "_"), message)


def fields_named(message: str) -> list[str]:
    """The request fields a message names as CLI options: ``--from-date`` is ``body.from_date``
    (every option listed above is a field of a request body)."""
    return list(dict.fromkeys(f"body.{m.group(1).replace('-', '_')}" for m in _OPTION.finditer(message)))


def _field(loc: tuple[Any, ...]) -> str:
    # ("body", "conf") -> "body.conf"; ("query", "limit") -> "query.limit"
    return ".".join(str(p) for p in loc) or "request"


def _airflow(request: Request) -> bool:
    """``/api/v2`` and ``/auth/token`` answer as Airflow does: ``{"detail": ...}``, with
    FastAPI's own list for a request that does not validate."""
    return is_v2(request.url.path)


def _out_of_range(exc: BaseException) -> bool:
    """A number too large for the database's integers (SQLite raises OverflowError, which
    SQLAlchemy wraps; PostgreSQL answers "out of range"): the request is wrong, not the server."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, OverflowError) or "out of range" in str(seen).lower():
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return False


def install(app: FastAPI) -> None:
    @app.exception_handler(MillstreamError)
    async def millstream_error(request: Request, exc: MillstreamError) -> Response:
        status, kind = status_of(exc)
        if _airflow(request):
            return JSONResponse({"detail": str(exc)}, status_code=status)
        page = getattr(app.state, "error_page", None)
        if page is not None and not request.url.path.startswith("/api/"):
            return page(request, status, str(exc))  # type: ignore[no-any-return]
        detail = for_http(str(exc))
        body: dict[str, Any] = {"detail": detail, "type": kind}
        if status == 422 and (named := fields_named(str(exc))):
            body["errors"] = [{"field": f, "message": detail} for f in named]
        return JSONResponse(body, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        if _airflow(request):
            return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
        errors = [
            {"field": _field(tuple(e.get("loc", ()))), "message": str(e.get("msg", "invalid"))}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return JSONResponse({"detail": detail, "type": "invalid", "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _airflow(request):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
            )
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

    async def out_of_range(request: Request, exc: Exception) -> Response:
        # Registered for these classes (not for Exception), so Starlette answers with it and
        # does not re-raise; anything else of the same classes is still a 500 with its log.
        if not _out_of_range(exc):
            raise exc
        detail = "a number in the request is out of range: integers are at most 2**63-1"
        if _airflow(request):
            return JSONResponse({"detail": detail}, status_code=422)
        return JSONResponse({"detail": detail, "type": "invalid"}, status_code=422)

    app.add_exception_handler(OverflowError, out_of_range)
    app.add_exception_handler(StatementError, out_of_range)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        if _airflow(request):
            return JSONResponse({"detail": "Internal Server Error"}, status_code=500)
        return JSONResponse(
            {"detail": "internal error; the API server's log has the traceback", "type": "internal"},
            status_code=500,
        )
