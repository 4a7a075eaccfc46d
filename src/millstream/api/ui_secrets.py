"""The web UI's Variables and Connections pages. They read through the REST API's route
functions, so what they show is masked the same way: sensitive variables and every
password as ``***``, never the secret itself (not even in a form's value). Changes go
through the REST API from the page's forms, for admins only."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import Response

from millstream.api.deps import get_store
from millstream.api.routes import connections as connections_r
from millstream.api.routes import variables as variables_r
from millstream.api.schemas import MAX_INT
from millstream.api.ui import _fragment, _render, _user

PAGE = 100


def variables_page(request: Request, offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0) -> Response:
    who = _user(request)
    items, total = variables_r.read_variables(get_store(request), offset, PAGE)
    name = "variables_table.html" if _fragment(request) else "variables.html"
    return _render(request, name, who, items=items, total=total, offset=offset, limit=PAGE)


def _extra_text(extra: Any) -> str:
    """The (masked) extra as the edit form shows it: JSON, or empty for none."""
    if extra is None or isinstance(extra, str):
        return ""
    return json.dumps(extra, indent=2, sort_keys=True)


def connections_page(request: Request, offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0) -> Response:
    who = _user(request)
    items, total = connections_r.read_connections(get_store(request), offset, PAGE)
    rows = [(c, _extra_text(c.extra)) for c in items]
    name = "connections_table.html" if _fragment(request) else "connections.html"
    return _render(request, name, who, rows=rows, total=total, offset=offset, limit=PAGE)


ROUTES: list[tuple[str, Any, list[str]]] = [
    ("/variables", variables_page, ["GET"]),
    ("/connections", connections_page, ["GET"]),
]
