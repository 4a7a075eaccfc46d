"""Airflow 3.3's DAG endpoints: ``/dags`` (list, get, details, pause one or many, delete),
``/dagStats``, ``/importErrors``, ``/dags/{dag_id}/tasks``, ``/dagSources``, ``/dagTags``.

A thin mapping onto the store's DAG rows and parsed versions, as ``/api/v1/dags`` reads
them; pausing goes through :func:`millstream.control.set_paused`, as v1's does. DAGs are
the few-hundred-row kind, so the list is filtered and ordered in Python with Airflow's
semantics: ``*_pattern`` is SQL ``ILIKE '%term%'`` (``%``/``_`` are wildcards, ``|`` is OR,
``~`` matches all), ``*_prefix_pattern`` its case-sensitive prefix range, and the
``dag_run_*`` filters look at each DAG's latest run (the last created).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from sqlalchemy import Connection

from millstream import control
from millstream.api.deps import SettingsDep, StoreDep, changed
from millstream.api.schemas import MAX_INT
from millstream.api.v2 import dags_models as m
from millstream.api.v2.common import EditUser, PagingDep, ReadUser, not_found, order_by, sort_rows
from millstream.api.v2.dags_filters import in_range, prefix, search
from millstream.core.assets import condition_keys, split_key
from millstream.core.model import DagSpec
from millstream.core.states import RunState
from millstream.errors import NotFoundError
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q
from millstream.store import users as users_q

router = APIRouter()

DAG_ORDER = ("dag_id", "dag_display_name", "next_dagrun", "last_run_state", "last_run_start_date")
IMPORT_ERROR_ORDER = ("id", "timestamp", "filename", "bundle_name", "stacktrace", "import_error_id")
TASK_ORDER = frozenset(
    {
        "task_id",
        "task_display_name",
        "owner",
        "start_date",
        "end_date",
        "trigger_rule",
        "depends_on_past",
        "wait_for_downstream",
        "retries",
        "queue",
        "pool",
        "pool_slots",
        "execution_timeout",
        "retry_delay",
        "retry_exponential_backoff",
        "priority_weight",
        "weight_rule",
        "ui_color",
        "ui_fgcolor",
        "operator_name",
    }
)
NO_OWNERS = (
    "Millstream does not record DAG owners (a task's `owner` is not kept in a DAG version), "
    "so the `owners` filter cannot be applied"
)
NO_DELETE = (
    "Millstream cannot delete a DAG's metadata: its runs and their history stay in the store. "
    "Remove the DAG's file from the DAG folder and the DAG becomes stale (is_stale: true)"
)

Pattern = Annotated[str | None, Query(description="Case-insensitive SQL `ILIKE` match; `|` is OR, `~` all.")]
Prefix = Annotated[str | None, Query(description="Case-sensitive prefix match; `|` is OR, `~` all.")]
Strings = Annotated[list[str], Query()]
OrderByQ = Annotated[
    list[str] | None,
    Query(alias="order_by", description="Fields to order by; prefix `-` for descending."),
]


# -- the DAG list ---------------------------------------------------------------------------


@dataclass
class Listed:
    row: Mapping[Any, Any]
    spec: DagSpec
    last: Mapping[Any, Any] | None  # the latest run
    has_import_errors: bool

    def sort_keys(self) -> dict[str, Any]:
        return {
            "dag_id": self.row["dag_id"],
            "dag_display_name": m.display_name(self.row),
            "next_dagrun": self.row["next_run_logical_date"],
            "last_run_state": self.last["state"] if self.last else None,
            "last_run_start_date": self.last["start_date"] if self.last else None,
        }


def _load(conn: Connection) -> list[Listed]:
    rows = [r for r in dags_q.list_dags(conn, active_only=False) if r["latest_version_id"]]
    specs = dags_q.specs_for_versions(conn, [r["latest_version_id"] for r in rows])
    broken = {e["filename"] for e in dags_q.list_import_errors(conn)}
    last = runs_q.latest_of_each(conn)
    return [
        Listed(r, specs[r["latest_version_id"]], last.get(r["dag_id"]), r["fileloc"] in broken) for r in rows
    ]


def _refuse_owners(owners: list[str]) -> None:
    if owners:
        raise HTTPException(400, NO_OWNERS)


def _base_filters(
    items: list[Listed],
    *,
    tags: list[str],
    tags_match_mode: str | None,
    dag_id_pattern: str | None,
    dag_id_prefix_pattern: str | None,
    exclude_stale: bool,
    paused: bool | None,
) -> list[Listed]:
    """The filters ``GET /dags`` and ``PATCH /dags`` share."""
    by_id, by_prefix = search(dag_id_pattern), prefix(dag_id_prefix_pattern)
    want = set(tags)
    out = []
    for it in items:
        r = it.row
        if exclude_stale and not r["is_active"]:
            continue
        if paused is not None and bool(r["is_paused"]) != paused:
            continue
        if by_id and not by_id(r["dag_id"]):
            continue
        if by_prefix and not by_prefix(r["dag_id"]):
            continue
        if want:
            have = set(r["tags"] or [])
            if not (want <= have if tags_match_mode == "all" else want & have):
                continue
        out.append(it)
    return out


def _run_states(values: list[str]) -> list[str | None]:
    valid = [s.value for s in RunState]
    if any(v not in valid and v != "none" for v in values):
        raise HTTPException(422, f"Invalid value for state. Valid values are {', '.join(valid)}")
    return [None if v == "none" else v for v in values]


def _pause_all(request: Request, store: Any, dag_ids: Sequence[str], paused: bool) -> None:
    for dag_id in dag_ids:
        control.set_paused(store, dag_id, paused)
    if dag_ids:
        changed(request)


def _responses(conn: Connection, items: Sequence[Listed], folder: Path) -> list[dict[str, Any]]:
    secret = users_q.session_secret(conn)
    return [
        m.dag_response(it.row, it.spec, folder=folder, secret=secret, has_import_errors=it.has_import_errors)
        for it in items
    ]


@router.get("/dags", response_model=m.DAGCollectionResponse, tags=["DAG"], summary="Get Dags")
def get_dags(
    store: StoreDep,
    settings: SettingsDep,
    who: ReadUser,
    page: PagingDep,
    tags: Strings = [],  # noqa: B006 - FastAPI copies query defaults
    tags_match_mode: Literal["any", "all"] | None = None,
    owners: Strings = [],  # noqa: B006
    dag_id_pattern: Pattern = None,
    dag_id_prefix_pattern: Prefix = None,
    dag_display_name_pattern: Pattern = None,
    dag_display_name_prefix_pattern: Prefix = None,
    exclude_stale: bool = True,
    paused: bool | None = None,
    has_import_errors: bool | None = None,
    last_dag_run_state: RunState | None = None,
    bundle_name: str | None = None,
    bundle_version: str | None = None,
    has_asset_schedule: bool | None = None,
    asset_dependency: str | None = None,
    dag_run_start_date_gte: datetime | None = None,
    dag_run_start_date_gt: datetime | None = None,
    dag_run_start_date_lte: datetime | None = None,
    dag_run_start_date_lt: datetime | None = None,
    dag_run_end_date_gte: datetime | None = None,
    dag_run_end_date_gt: datetime | None = None,
    dag_run_end_date_lte: datetime | None = None,
    dag_run_end_date_lt: datetime | None = None,
    dag_run_state: Strings = [],  # noqa: B006
    order_by_: OrderByQ = None,
    is_favorite: bool | None = None,
    timetable_type: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    """Every Airflow filter is applied. Millstream has one implicit bundle, ``dags-folder``
    (unversioned: any ``bundle_version`` matches nothing), and no favourites (``is_favorite``
    true matches nothing); it does not record owners, so ``owners`` is refused."""
    _refuse_owners(owners)
    keys = order_by(order_by_, DAG_ORDER, "dag_id")
    states = _run_states(dag_run_state)
    by_name, by_name_prefix = search(dag_display_name_pattern), prefix(dag_display_name_prefix_pattern)
    dependency = asset_dependency.lower() if asset_dependency is not None else None
    with store.read() as conn:
        items = _base_filters(
            _load(conn),
            tags=tags,
            tags_match_mode=tags_match_mode,
            dag_id_pattern=dag_id_pattern,
            dag_id_prefix_pattern=dag_id_prefix_pattern,
            exclude_stale=exclude_stale,
            paused=paused,
        )

        def keep(it: Listed) -> bool:
            name = m.display_name(it.row)
            last = it.last or {}
            if (by_name and not by_name(name)) or (by_name_prefix and not by_name_prefix(name)):
                return False
            if has_import_errors is not None and it.has_import_errors != has_import_errors:
                return False
            if last_dag_run_state is not None and last.get("state") != last_dag_run_state.value:
                return False
            if states and last.get("state") not in states:
                return False
            if bundle_name is not None and bundle_name != m.BUNDLE_NAME:
                return False
            if bundle_version is not None or is_favorite:
                return False
            if has_asset_schedule is not None and bool(it.spec.asset_trigger) != has_asset_schedule:
                return False
            if dependency is not None and not _depends_on(it.spec, dependency):
                return False
            if timetable_type and m.timetable_type(it.spec) not in timetable_type:
                return False
            start, end = last.get("start_date"), last.get("end_date")
            return in_range(
                start,
                dag_run_start_date_gte,
                dag_run_start_date_gt,
                dag_run_start_date_lte,
                dag_run_start_date_lt,
            ) and in_range(
                end, dag_run_end_date_gte, dag_run_end_date_gt, dag_run_end_date_lte, dag_run_end_date_lt
            )

        items = [it for it in items if keep(it)]
        if "dag_id" not in [k for k, _ in keys]:
            keys.append(("dag_id", keys[0][1]))
        by_key = {it.row["dag_id"]: it for it in items}
        ordered = sort_rows([it.sort_keys() for it in items], keys)
        shown = page.window([by_key[k["dag_id"]] for k in ordered])
        return {"dags": _responses(conn, shown, settings.dags_folder), "total_entries": len(items)}


def _depends_on(spec: DagSpec, needle: str) -> bool:
    """Scheduled on an asset whose name or URI contains ``needle`` (literally, any case)."""
    if not spec.asset_trigger:
        return False
    names = {
        name
        for kind, name in map(split_key, condition_keys(spec.asset_trigger["condition"]))
        if kind == "asset"
    }
    uris = {a["name"]: a.get("uri", a["name"]) for a in spec.assets}
    return any(needle in n.lower() or needle in str(uris.get(n, n)).lower() for n in names)


@router.patch("/dags", response_model=m.DAGCollectionResponse, tags=["DAG"], summary="Patch Dags")
def patch_dags(
    body: m.DAGPatchBody,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    who: EditUser,
    page: PagingDep,
    update_mask: Annotated[list[str] | None, Query()] = None,
    tags: Strings = [],  # noqa: B006
    tags_match_mode: Literal["any", "all"] | None = None,
    owners: Strings = [],  # noqa: B006
    dag_id_pattern: Pattern = None,
    dag_id_prefix_pattern: Prefix = None,
    exclude_stale: bool = True,
    paused: bool | None = None,
) -> dict[str, Any]:
    """Pause or unpause every DAG the filters match (the page lists some of them). As
    Airflow documents, without ``dag_id_pattern`` or ``dag_id_prefix_pattern`` nothing
    matches: pass ``~`` to match every DAG."""
    if update_mask and update_mask != ["is_paused"]:
        raise HTTPException(400, "Only `is_paused` field can be updated through the REST API")
    _refuse_owners(owners)
    if dag_id_pattern is None and dag_id_prefix_pattern is None:
        return {"dags": [], "total_entries": 0}
    filters: dict[str, Any] = dict(
        tags=tags,
        tags_match_mode=tags_match_mode,
        dag_id_pattern=dag_id_pattern,
        dag_id_prefix_pattern=dag_id_prefix_pattern,
        exclude_stale=exclude_stale,
        paused=paused,
    )
    with store.read() as conn:
        matched = _base_filters(_load(conn), **filters)
    ids = [it.row["dag_id"] for it in matched]
    shown = set(ids[page.offset : page.offset + page.limit])
    _pause_all(request, store, ids, body.is_paused)
    with store.read() as conn:
        again = [it for it in _load(conn) if it.row["dag_id"] in shown]
        return {"dags": _responses(conn, again, settings.dags_folder), "total_entries": len(ids)}


# -- one DAG --------------------------------------------------------------------------------


def _one(conn: Connection, dag_id: str) -> Listed:
    """The DAG and its latest parsed version, or Airflow's 404."""
    try:
        row = dags_q.get_dag(conn, dag_id)
    except NotFoundError:
        row = None
    if row is None or not row["latest_version_id"]:
        not_found(f"The Dag with ID: `{dag_id}` was not found")
    spec = dags_q.spec_for_version(conn, row["latest_version_id"])
    broken = bool(dags_q.list_import_errors(conn, folder=row["fileloc"]))
    return Listed(row, spec, None, broken)


def _exists(store: Any, dag_id: str) -> None:
    with store.read() as conn:
        try:
            dags_q.get_dag(conn, dag_id)
        except NotFoundError:
            not_found(f"Dag with id: {dag_id} was not found")


@router.get("/dags/{dag_id}", response_model=m.DAGResponse, tags=["DAG"], summary="Get Dag")
def get_dag(dag_id: str, store: StoreDep, settings: SettingsDep, who: ReadUser) -> dict[str, Any]:
    with store.read() as conn:
        return _responses(conn, [_one(conn, dag_id)], settings.dags_folder)[0]


@router.get(
    "/dags/{dag_id}/details", response_model=m.DAGDetailsResponse, tags=["DAG"], summary="Get Dag Details"
)
def get_dag_details(dag_id: str, store: StoreDep, settings: SettingsDep, who: ReadUser) -> dict[str, Any]:
    with store.read() as conn:
        it = _one(conn, dag_id)
        base = _responses(conn, [it], settings.dags_folder)[0]
        version = dags_q.get_version(conn, dag_id)
        running = sum(n for _, s, n in runs_q.count_by_state(conn, [dag_id]) if s == RunState.RUNNING.value)
    return m.details_response(base, it.row, it.spec, version, running)


@router.patch("/dags/{dag_id}", response_model=m.DAGResponse, tags=["DAG"], summary="Patch Dag")
def patch_dag(
    dag_id: str,
    body: m.DAGPatchBody,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    who: EditUser,
    update_mask: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    _exists(store, dag_id)
    if update_mask and update_mask != ["is_paused"]:
        raise HTTPException(400, "Only `is_paused` field can be updated through the REST API")
    _pause_all(request, store, [dag_id], body.is_paused)
    with store.read() as conn:
        return _responses(conn, [_one(conn, dag_id)], settings.dags_folder)[0]


@router.delete("/dags/{dag_id}", status_code=204, tags=["DAG"], summary="Delete Dag")
def delete_dag(dag_id: str, store: StoreDep, who: EditUser) -> Response:
    """Refused: Millstream keeps a DAG's history for good (see the detail)."""
    _exists(store, dag_id)
    raise HTTPException(400, NO_DELETE)


# -- stats, import errors, tags ---------------------------------------------------------------


@router.get(
    "/dagStats", response_model=m.DagStatsCollectionResponse, tags=["DagStats"], summary="Get Dag Stats"
)
def get_dag_stats(store: StoreDep, who: ReadUser, dag_ids: Strings = []) -> dict[str, Any]:  # noqa: B006
    """Runs per state of each DAG that has runs, every state listed (0 where none)."""
    with store.read() as conn:
        names = {r["dag_id"]: m.display_name(r) for r in dags_q.list_dags(conn, active_only=False)}
        counts = runs_q.count_by_state(conn, dag_ids or None)
    by_dag: dict[str, dict[str, int]] = {}
    for dag_id, state, n in counts:
        if dag_id in names:
            by_dag.setdefault(dag_id, {})[state] = n
    dags = [
        {
            "dag_id": dag_id,
            "dag_display_name": names[dag_id],
            "stats": [{"state": s, "count": states.get(s.value, 0)} for s in RunState],
        }
        for dag_id, states in sorted(by_dag.items())
    ]
    return {"dags": dags, "total_entries": len(dags)}


def _import_errors(conn: Connection, folder: Path) -> list[dict[str, Any]]:
    return [
        {
            "id": m.import_error_id(e["filename"]),
            "timestamp": e["timestamp"],
            "filename": m.relative(e["filename"], folder),
            "bundle_name": m.BUNDLE_NAME,
            "stacktrace": e["stacktrace"] or e["message"],
        }
        for e in dags_q.list_import_errors(conn)
    ]


def _import_error_out(e: Mapping[Any, Any]) -> dict[str, Any]:
    return {**e, "import_error_id": e["id"], "stack_trace": e["stacktrace"]}


@router.get(
    "/importErrors",
    response_model=m.ImportErrorCollectionResponse,
    tags=["Import Error"],
    summary="Get Import Errors",
)
def get_import_errors(
    store: StoreDep,
    settings: SettingsDep,
    who: ReadUser,
    page: PagingDep,
    order_by_: OrderByQ = None,
    filename_pattern: Pattern = None,
    filename_prefix_pattern: Prefix = None,
    filename: str | None = None,
    bundle_name: str | None = None,
) -> dict[str, Any]:
    """DAG files that failed their last import, one per file (``filename`` relative to the
    DAG folder, as Airflow names files in a bundle)."""
    keys = [
        ("id" if k == "import_error_id" else k, d) for k, d in order_by(order_by_, IMPORT_ERROR_ORDER, "id")
    ]
    if "id" not in [k for k, _ in keys]:
        keys.append(("id", keys[0][1]))
    tests = [t for t in (search(filename_pattern), prefix(filename_prefix_pattern)) if t]
    with store.read() as conn:
        rows = _import_errors(conn, settings.dags_folder)
    rows = [
        r
        for r in rows
        if all(t(r["filename"]) for t in tests)
        and (filename is None or r["filename"] == filename)
        and (bundle_name is None or r["bundle_name"] == bundle_name)
    ]
    shown = page.window(sort_rows(rows, keys))
    return {"import_errors": [_import_error_out(r) for r in shown], "total_entries": len(rows)}


@router.get(
    "/importErrors/{import_error_id}",
    response_model=m.ImportErrorResponse,
    tags=["Import Error"],
    summary="Get Import Error",
)
def get_import_error(
    import_error_id: int, store: StoreDep, settings: SettingsDep, who: ReadUser
) -> dict[str, Any]:
    with store.read() as conn:
        rows = _import_errors(conn, settings.dags_folder)
    for r in rows:
        if r["id"] == import_error_id:
            return _import_error_out(r)
    not_found(f"The ImportError with import_error_id: `{import_error_id}` was not found")


@router.get("/dagTags", response_model=m.DAGTagCollectionResponse, tags=["DAG"], summary="Get Dag Tags")
def get_dag_tags(
    store: StoreDep,
    who: ReadUser,
    page: PagingDep,
    order_by_: OrderByQ = None,
    tag_name_pattern: Pattern = None,
    tag_name_prefix_pattern: Prefix = None,
) -> dict[str, Any]:
    """The distinct tags of DAGs that are not stale."""
    keys = order_by(order_by_, ("name",), "name")
    tests = [t for t in (search(tag_name_pattern), prefix(tag_name_prefix_pattern)) if t]
    with store.read() as conn:
        names = {t for r in dags_q.list_dags(conn) for t in (r["tags"] or [])}
    rows = [{"name": n} for n in sorted(names) if all(t(n) for t in tests)]
    shown = page.window(sort_rows(rows, keys))
    return {"tags": [r["name"] for r in shown], "total_entries": len(rows)}


# -- tasks and source ---------------------------------------------------------------------------


def _task_sort_value(v: Any) -> Any:
    if isinstance(v, dict):  # a TimeDelta
        return v["days"] * 86400 + v["seconds"] + v["microseconds"] / 1e6
    return v


@router.get(
    "/dags/{dag_id}/tasks", response_model=m.TaskCollectionResponse, tags=["Task"], summary="Get Tasks"
)
def get_tasks(dag_id: str, store: StoreDep, who: ReadUser, order_by: str = "task_id") -> dict[str, Any]:
    """The tasks of the DAG's latest version; ``order_by`` is one field, ``-`` descending."""
    with store.read() as conn:
        spec = _one(conn, dag_id).spec
    field = order_by.lstrip("-")
    if field not in TASK_ORDER:
        raise HTTPException(
            400, f"Ordering with '{field}' is disallowed or the attribute does not exist on the model"
        )
    params = m.dag_params(spec, "dag")
    tasks = [m.task_response(spec, t, params) for t in spec.tasks]
    tasks.sort(key=lambda t: (t[field] is None, _task_sort_value(t[field])), reverse=order_by.startswith("-"))
    return {"tasks": tasks, "total_entries": len(tasks)}


@router.get(
    "/dags/{dag_id}/tasks/{task_id}", response_model=m.TaskResponse, tags=["Task"], summary="Get Task"
)
def get_task(dag_id: str, task_id: str, store: StoreDep, who: ReadUser) -> dict[str, Any]:
    with store.read() as conn:
        spec = _one(conn, dag_id).spec
    if not spec.has_task(task_id):
        not_found(f"Task with id {task_id} was not found")
    return m.task_response(spec, spec.task(task_id), m.dag_params(spec, "dag"))


@router.get(
    "/dagSources/{dag_id}",
    response_model=m.DAGSourceResponse,
    tags=["DagSource"],
    summary="Get Dag Source",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string", "example": "dag code"}}}}},
)
def get_dag_source(
    dag_id: str,
    store: StoreDep,
    who: ReadUser,
    version_number: int | None = None,
    accept: Annotated[str, Header()] = "*/*",
) -> Any:
    """The DAG file's text as the version recorded it (the latest version by default);
    ``Accept: text/plain`` gives the bare text."""
    if accept.startswith("*/*"):
        kind = "any"
    elif accept.startswith("application/json"):
        kind = "json"
    elif accept.startswith("text/plain"):
        kind = "text"
    else:
        raise HTTPException(406, "Only application/json or text/plain is supported")
    with store.read() as conn:
        # A number past the store's integers names no version (and must not reach SQLite).
        fits = version_number is None or abs(version_number) <= MAX_INT
        version = dags_q.get_version(conn, dag_id, version_number) if fits else None
        try:
            row = dags_q.get_dag(conn, dag_id)
        except NotFoundError:
            row = None
    if version is None or row is None:
        not_found(f"The source code of the Dag {dag_id}, version_number {version_number} was not found")
    if version["source"] is None:
        not_found(f"Code not found. dag_id='{dag_id}' version_number='{version_number}'")
    if kind == "text":
        return Response(version["source"], media_type="text/plain")
    return {
        "content": version["source"],
        "dag_id": dag_id,
        "version_number": version["version_number"],
        "dag_display_name": m.display_name(row),
    }
