"""Airflow 3.3's REST API, ``/api/v2``, beside Millstream's own ``/api/v1``.

Each module maps one group of Airflow's endpoints onto :mod:`millstream.control` and the
store's queries; :mod:`.common` holds what differs from v1 (errors, paging, ordering,
authentication answers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from millstream.api.prefixes import is_v2
from millstream.api.v2 import (
    assets,
    auth_token,
    backfills,
    connections,
    dag_runs,
    dags,
    logs,
    monitor,
    pools,
    task_instances,
    variables,
    xcom,
)
from millstream.api.v2.common import PREFIX

ROUTERS = (
    dags,
    dag_runs,
    task_instances,
    logs,
    xcom,
    variables,
    connections,
    pools,
    assets,
    backfills,
    monitor,
)


def _operation_id(route: APIRoute) -> str:
    return route.name


def install(app: FastAPI) -> None:
    # Operation ids are the route functions' names, which are Airflow's (get_dags, ...).
    app.include_router(auth_token.router, generate_unique_id_function=_operation_id)
    for module in ROUTERS:
        app.include_router(module.router, prefix=PREFIX, generate_unique_id_function=_operation_id)

    schema: dict[str, Any] = {}

    @app.get(f"{PREFIX}/openapi.json", include_in_schema=False)
    def openapi() -> JSONResponse:
        """Open to all, as Airflow's is: the v2 routes and the login."""
        if not schema:
            full = get_openapi(
                title="Millstream: Airflow REST API v2",
                version=app.version,
                description="Airflow 3.3's stable REST API, served by Millstream. "
                "Log in with POST /auth/token and send `Authorization: Bearer <token>`.",
                routes=app.routes,
            )
            schema.update(only_paths(full, is_v2))
        return JSONResponse(schema)


def only_paths(spec: dict[str, Any], keep: Callable[[str], bool]) -> dict[str, Any]:
    """``spec`` with the paths ``keep`` takes, and only the component schemas they use
    (the app holds both APIs; each has its own document)."""
    paths = {p: ops for p, ops in spec.get("paths", {}).items() if keep(p)}
    schemas = spec.get("components", {}).get("schemas", {})
    used: set[str] = set()
    todo = [paths]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in used and name in schemas:
                    used.add(name)
                    todo.append(schemas[name])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    components = {**spec.get("components", {}), "schemas": {n: schemas[n] for n in sorted(used)}}
    return {**spec, "paths": paths, "components": components}
