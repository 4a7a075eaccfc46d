"""The FastAPI application: REST API under ``/api/v1``, web UI at ``/``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from millstream.api import errors, v2
from millstream.api import metrics as metrics_api
from millstream.api.auth import User
from millstream.api.routes import assets, backfills, connections, dags, pools, runs, system, variables
from millstream.api.schemas import ERRORS
from millstream.api.throttle import LoginThrottle
from millstream.settings import Settings
from millstream.store import Store, ensure_schema, secret_values
from millstream.store import users as users_q

API = "/api/v1"


class RefuseNul:
    """A NUL byte in a path or query is never meaningful and some databases reject it
    outright: answer 422 before any route sees it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
            if b"%00" in raw or b"\x00" in raw or b"%00" in scope.get("query_string", b""):
                body = json.dumps({"detail": "the URL contains a NUL character", "type": "invalid"}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 422,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def create_app(
    settings: Settings, store: Store | None = None, *, ui: bool = True, metrics: Any = None
) -> FastAPI:
    """The app for one store. ``store`` defaults to the settings' database (migrated).
    ``metrics``: the Prometheus registry of a scheduler in this same process (standalone)."""
    if store is None:
        store = Store(settings.database_url)
        ensure_schema(store)
    secret_values.bind_store(store)  # Variables and Connections read in this process come from it
    with store.begin() as conn:
        secret = users_q.session_secret(conn)
    app = FastAPI(
        title="Millstream",
        version=_version(),
        description="Pipelines, runs, task instances, assets, backfills, pools, variables and connections. "
        "Authenticate with `Authorization: Bearer <token>` (POST /api/v1/auth/token, or "
        "`millstream users token`).",
        openapi_url=None,  # served below, behind authentication like every endpoint but health
        docs_url=None,
        redoc_url=None,
    )
    app.state.store = store
    app.state.settings = settings
    app.state.throttle = LoginThrottle()
    errors.install(app)
    for module in (system, dags, runs, assets, backfills, pools, variables, connections):
        app.include_router(module.router, prefix=API, responses=ERRORS)

    v2.install(app)
    metrics_api.install(app, settings, store, metrics)
    v1_schema: dict[str, Any] = {}

    @app.get(f"{API}/openapi.json", include_in_schema=False)
    def openapi(who: User) -> JSONResponse:
        if not v1_schema:
            full = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            v1_schema.update(v2.only_paths(full, lambda path: not v2.is_v2(path)))
        return JSONResponse(v1_schema)

    if ui:
        from millstream.api import ui as ui_pages
        from millstream.api import ui_secrets

        ui_pages.install(app)
        ui_pages.add_routes(app, ui_secrets.ROUTES)
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie="millstream_session",
        max_age=12 * 3600,
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    app.add_middleware(RefuseNul)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("millstream")
    except PackageNotFoundError:
        return "0"


def serve(app: Any, host: str, port: int) -> Any:
    """A uvicorn server for ``app`` (run it with ``.run()``; stop with ``should_exit = True``)."""
    import uvicorn

    from millstream.worker import logformat

    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, **logformat.uvicorn_options()
    )
    return uvicorn.Server(config)
