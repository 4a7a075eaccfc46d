"""The web UI: server-rendered pages (Jinja2) that read through the same functions as the
REST API. Parts that change while runs progress are fragments the page's small script
(static/millstream.js) fetches again every few seconds; changes go through the REST API
with the session's CSRF token."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import StrictUndefined

from millstream.api import graph, links
from millstream.api.auth import Principal, csrf_token, resolve, start_session
from millstream.api.deps import Paging, get_store, run_out
from millstream.api.routes import assets as assets_r
from millstream.api.routes import backfills as backfills_r
from millstream.api.routes import dags as dags_r
from millstream.api.routes import runs as runs_r
from millstream.api.schemas import MAX_INT
from millstream.errors import NotFoundError
from millstream.store import Store, paging
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q
from millstream.store import users as users_q

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.undefined = StrictUndefined  # a typo in a template is an error in the tests, not a blank
GRID_RUNS = 25  # runs per grid page: a DAG with 365 runs is paged, never drawn at once
INSTANCES_PAGE = 50  # mapped instances per page


class LoginRequired(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, path: str) -> None:
        self.path = path


def _fmt(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "\u2013"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "\u2013"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


templates.env.filters["dt"] = _fmt
templates.env.filters["short"] = lambda v: v.astimezone(UTC).strftime("%m-%d %H:%M") if v else ""
templates.env.filters["dur"] = _duration
templates.env.filters["q"] = lambda v: quote(str(v), safe="")
templates.env.globals["STATES"] = graph.STATE_PRIORITY


def _param_defaults(params: dict[str, Any]) -> str:
    """The trigger dialog's starting conf: every param with a default, at its default."""
    from millstream.sdk.params import Param

    out = {}
    for name, d in params.items():
        p = Param.from_dict(d)
        if p.has_default():
            out[name] = p.default
    return json.dumps(out, indent=2, default=str)


templates.env.globals["param_defaults"] = _param_defaults


def _user(request: Request) -> Principal:
    who = resolve(request)
    if who is None:
        raise LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return who


def _render(
    request: Request, name: str, who: Principal | None, *, code: int = 200, **ctx: Any
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        name,
        {"who": who, "csrf": csrf_token(request) if who else "", "path": request.url.path, **ctx},
        status_code=code,
    )


def _fragment(request: Request) -> bool:
    return request.query_params.get("fragment") == "1"


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        if _fragment(request):
            return Response("login required", status_code=401)
        return RedirectResponse(f"/login?{urlencode({'next': exc.path})}", status_code=303)

    def error_page(request: Request, status: int, message: str) -> Response:
        who = resolve(request)
        if _fragment(request):
            return Response(message, status_code=status)
        return _render(request, "error.html", who, status=status, message=message, code=status)

    app.state.error_page = error_page
    add_routes(app, ROUTES)


def add_routes(app: FastAPI, routes: list[Any]) -> None:
    """Register page routes (this module's, and those of page modules built on it)."""
    for route in routes:
        app.add_api_route(route[0], route[1], methods=route[2], include_in_schema=False, response_model=None)


# -- login ----------------------------------------------------------------------------------------


def _safe_next(value: str | None) -> str:
    return value if value and value.startswith("/") and not value.startswith("//") else "/"


def login_page(request: Request, next: str | None = None) -> Response:
    return _render(request, "login.html", None, next=_safe_next(next), error=None, username="")


def login(
    request: Request,
    username: Annotated[str, Form(max_length=150)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    throttle = request.app.state.throttle
    user = None
    if users_q.valid_username(username):  # (a NUL or such never reaches the database)
        try:
            throttle.attempt(username)
        except HTTPException as e:
            return _render(
                request,
                "login.html",
                None,
                next=_safe_next(next),
                error=e.detail,
                username=username,
                code=429,
            )
        with get_store(request).read() as conn:
            user = users_q.authenticate(conn, username, password)
    if user is None:
        return _render(
            request,
            "login.html",
            None,
            next=_safe_next(next),
            error="Wrong username or password.",
            username=username,
            code=401,
        )
    throttle.succeeded(username)
    start_session(request, user["id"], user["username"], user["session_epoch"])
    return RedirectResponse(_safe_next(next), status_code=303)


def logout(request: Request) -> Response:
    """Ends every UI session of the user, not only this cookie (a copied cookie dies too)."""
    who = resolve(request)
    if who is not None and who.via == "session":
        with get_store(request).begin() as conn:
            users_q.end_sessions(conn, who.id)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


# -- DAGs -----------------------------------------------------------------------------------------


def dags_page(request: Request, offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0) -> Response:
    who = _user(request)
    store = get_store(request)
    page = dags_r.list_dags(store, who, Paging(100, offset))
    with store.read() as conn:
        errors = dags_q.list_import_errors(conn)
    name = "dags_table.html" if _fragment(request) else "dags.html"
    return _render(request, name, who, page=page, errors=errors)


def _dag_context(request: Request, dag_id: str) -> tuple[Principal, Store, Any]:
    who = _user(request)
    store = get_store(request)
    return who, store, dags_r.get_dag(dag_id, store, who)


def grid_page(
    request: Request,
    dag_id: str,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    state: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    who, store, dag = _dag_context(request, dag_id)
    grid = dags_r.grid(dag_id, store, who, Paging(GRID_RUNS, offset), state=state or None)
    runs = list(reversed(grid.runs))  # oldest on the left, as time reads
    rows = graph.grid_rows(grid.tasks)
    name = "grid_table.html" if _fragment(request) else "grid.html"
    return _render(
        request,
        name,
        who,
        dag=dag,
        grid=grid,
        runs=runs,
        rows=rows,
        offset=offset,
        limit=GRID_RUNS,
        state=state or "",
    )


def graph_page(request: Request, dag_id: str, run_id: str | None = None) -> Response:
    who, store, dag = _dag_context(request, dag_id)
    with store.read() as conn:
        runs = (
            runs_q.list_runs(conn, dag_id, limit=1)
            if run_id is None
            else [runs_q.get_run(conn, dag_id, run_id)]
        )
        # A run's graph is drawn from the DAG version it ran; the DAG's from the latest one.
        if run_id is not None:
            spec = dags_q.spec_for_version(conn, runs[0]["dag_version_id"])
        else:
            _, spec = dags_q.latest_spec(conn, dag_id)
        counts: dict[str, dict[str, int]] = {}
        if runs:
            for _, task_id, st, n, _ in ti_q.state_counts(conn, [runs[0]["id"]]):
                counts.setdefault(task_id, {})[st] = n
    picture = graph.dag_graph(spec, counts)
    run = runs[0] if runs else None
    name = "graph_svg.html" if _fragment(request) else "graph.html"
    return _render(request, name, who, dag=dag, picture=picture, run=run, W=graph.NODE_W, H=graph.NODE_H)


def run_page(request: Request, dag_id: str, run_id: str) -> Response:
    who, store, dag = _dag_context(request, dag_id)
    with store.read() as conn:
        row = runs_q.get_run(conn, dag_id, run_id)
        spec = dags_q.spec_for_version(conn, row["dag_version_id"])
        spans = ti_q.spans(conn, row["id"])
        counts: dict[str, dict[str, int]] = {}
        for _, task_id, st, n, _ in ti_q.state_counts(conn, [row["id"]]):
            counts.setdefault(task_id, {})[st] = n
    order = [t for t in graph.topological(spec)] + sorted(set(counts) - set(spec.task_ids))
    bars, total, height = graph.gantt(spans, order, counts, row["start_date"], datetime.now(UTC))
    mapped = {t.task_id for t in spec.tasks if t.is_mapped}
    name = "run_body.html" if _fragment(request) else "run.html"
    return _render(
        request,
        name,
        who,
        dag=dag,
        run=runs_r.get_run(dag_id, run_id, store, who),
        bars=bars,
        total=total,
        height=height,
        counts=counts,
        mapped=mapped,
        conf=json.dumps(dict(row["conf"] or {}), indent=2),
    )


def instances_page(
    request: Request,
    dag_id: str,
    run_id: str,
    task_id: str,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    state: Annotated[str | None, Query(max_length=20)] = None,
    q: Annotated[str | None, Query(max_length=1000, description="A map index, or part of a label.")] = None,
) -> Response:
    """A mapped task's instances, a page at a time, with their labels; ``q`` finds one."""
    who, store, dag = _dag_context(request, dag_id)
    q = (q or "").strip()
    page = runs_r.list_task_instances(
        dag_id,
        run_id,
        store,
        who,
        Paging(INSTANCES_PAGE, offset),
        task_id=task_id,
        state=state or None,
        search=q,
    )
    if page.total == 0 and not state and not q:
        raise NotFoundError(f"run {run_id!r} has no task {task_id!r}")
    name = "instances_table.html" if _fragment(request) else "instances.html"
    return _render(
        request,
        name,
        who,
        dag=dag,
        run_id=run_id,
        task_id=task_id,
        page=page,
        state=state or "",
        q=q,
        size=INSTANCES_PAGE,
    )


def task_page(
    request: Request,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: Annotated[int, Query(ge=-1, le=MAX_INT)] = -1,
    try_number: Annotated[int | None, Query(alias="try", ge=1, le=MAX_INT)] = None,
    view: Literal["log", "rendered"] = "log",
) -> Response:
    who, store, dag = _dag_context(request, dag_id)
    ti = runs_r.get_task_instance(dag_id, run_id, task_id, store, who, map_index)
    tries = list(range(1, ti.try_number + 1))
    shown = try_number if try_number and try_number in tries else (tries[-1] if tries else None)
    rendered = None
    if view == "rendered" and shown:
        try:
            got = runs_r.get_rendered(dag_id, run_id, task_id, store, who, map_index, shown)
            rendered = {k: (_shown(v), got.renderers.get(k)) for k, v in got.fields.items()}
        except NotFoundError:
            rendered = None
    log_url = None
    if shown:
        log_url = (
            f"/api/v1/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
            f"/logs/{shown}?map_index={map_index}"
        )
    with store.read() as conn:
        elsewhere = links.for_page(conn, dag_id, run_id, task_id, map_index)
    name = "task_body.html" if _fragment(request) else "task.html"
    # Without ?try= the page follows the newest attempt, a retry included.
    return _render(
        request,
        name,
        who,
        dag=dag,
        ti=ti,
        tries=tries,
        shown=shown,
        log_url=log_url,
        picked=try_number,
        view=view,
        rendered=rendered,
        links=elsewhere["links"],
        trigger=elsewhere["trigger"],
    )


def _shown(value: Any) -> str:
    """A rendered field as the Rendered tab prints it: text as is, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True)


# -- assets and backfills -------------------------------------------------------------------------


def assets_page(request: Request) -> Response:
    who = _user(request)
    store = get_store(request)
    page = assets_r.list_assets(store, who, Paging(1000, 0))
    aliases = assets_r.list_aliases(store, who, Paging(1000, 0))
    with store.read() as conn:
        dag_ids = [r["dag_id"] for r in dags_q.list_dags(conn)]
    picture = graph.asset_graph([a.model_dump() for a in page.items], dag_ids)
    events = assets_r.list_events(store, who, Paging(20, 0))
    name = "assets_body.html" if _fragment(request) else "assets.html"
    return _render(
        request,
        name,
        who,
        assets=page.items,
        aliases=aliases.items,
        picture=picture,
        events=events,
        W=graph.NODE_W,
        H=graph.NODE_H,
    )


def asset_page(
    request: Request,
    name: Annotated[str, Query(min_length=1, max_length=1500)],
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> Response:
    who = _user(request)
    store = get_store(request)
    from millstream.store import assets as assets_q

    with store.read() as conn:
        row = assets_q.get_asset(conn, name)
        refs = assets_q.refs_by_key(conn).get(f"asset:{row['name']}", {})
        count = assets_q.count_events(conn, row["name"])
    asset = {
        "name": row["name"],
        "uri": row["uri"],
        "group": row["asset_group"],
        "events": count,
        "producers": refs.get("producers", []),
        "consumers": refs.get("consumers", []),
        "readers": refs.get("readers", []),
    }
    events = assets_r.list_events(store, who, Paging(50, offset), asset=row["name"])
    template = "asset_events.html" if _fragment(request) else "asset.html"
    return _render(request, template, who, asset=asset, events=events, offset=offset)


def backfills_page(request: Request, offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0) -> Response:
    who = _user(request)
    store = get_store(request)
    page = backfills_r.list_backfills(store, who, Paging(50, offset))
    if _fragment(request):  # the 2 s refresh: the table only
        return _render(request, "backfills_table.html", who, page=page, offset=offset)
    with store.read() as conn:  # DAGs the new-backfill form offers: those on a time schedule
        periodic = [
            r["dag_id"] for r in dags_q.list_dags(conn) if r["next_run_logical_date"] or _periodic(conn, r)
        ]
    return _render(request, "backfills.html", who, page=page, dag_ids=periodic, offset=offset)


def _periodic(conn: Any, row: Any) -> bool:
    from millstream.core.timetables import from_spec

    _, spec = dags_q.latest_spec(conn, row["dag_id"])
    return bool(from_spec(spec.timetable).periodic)


def backfill_page(
    request: Request,
    backfill_id: int,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> Response:
    who = _user(request)
    store = get_store(request)
    if not 1 <= backfill_id <= MAX_INT:
        raise NotFoundError(f"no backfill {backfill_id}")
    b = backfills_r.get(backfill_id, store, who)
    with store.read() as conn:
        rows, total = paging.page(conn, runs_q.query(b.dag_id, backfill_id=backfill_id), 50, offset)
    runs = [run_out(r) for r in rows]
    name = "backfill_body.html" if _fragment(request) else "backfill.html"
    return _render(request, name, who, b=b, runs=runs, total=total, offset=offset)


ROUTES: list[tuple[str, Any, list[str]]] = [
    ("/login", login_page, ["GET"]),
    ("/login", login, ["POST"]),
    ("/logout", logout, ["POST"]),
    ("/", dags_page, ["GET"]),
    ("/dags/{dag_id}", grid_page, ["GET"]),
    ("/dags/{dag_id}/graph", graph_page, ["GET"]),
    ("/dags/{dag_id}/runs/{run_id}", run_page, ["GET"]),
    ("/dags/{dag_id}/runs/{run_id}/graph", graph_page, ["GET"]),
    ("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}", task_page, ["GET"]),
    ("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/instances", instances_page, ["GET"]),
    ("/assets", assets_page, ["GET"]),
    ("/asset", asset_page, ["GET"]),
    ("/backfills", backfills_page, ["GET"]),
    ("/backfills/{backfill_id}", backfill_page, ["GET"]),
]
