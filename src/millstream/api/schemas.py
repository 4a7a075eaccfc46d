"""Request and response bodies of the REST API (what its OpenAPI document describes)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

T = TypeVar("T")

MAX_INT = 2**31 - 1


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _aware(value: datetime) -> datetime:
    value = value if value.tzinfo else value.replace(tzinfo=UTC)  # naive means UTC
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the range of dates in UTC") from None


def _plain_json(value: dict[str, Any]) -> dict[str, Any]:
    """What is stored must come back out: no NaN or infinities, no lone UTF-16 surrogates."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError) as e:
        raise ValueError(f"must be plain JSON ({type(e).__name__}: {e})") from None
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_plain_json)]
Name = Annotated[str, Field(min_length=1, max_length=250), AfterValidator(_no_nul)]
When = Annotated[datetime, AfterValidator(_aware)]

#: The values of the stored ``run_type`` column (manual, scheduler, backfills, asset events).
RunType = Literal["manual", "scheduled", "backfill", "asset_triggered"]
#: A backfill's ``state`` (see ``control.set_backfill_state`` and the scheduler's creation step).
BackfillState = Literal["running", "paused", "completed", "cancelled"]
#: What recorded an asset event: a task's outlet, a POST from outside, or an asset watcher.
EventSource = Literal["task", "external", "watcher"]


class Body(BaseModel):
    """Request bodies refuse fields they do not know: a typo is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class FieldError(BaseModel):
    field: str = Field(description="Where: body.conf, query.limit, path.dag_id ...")
    message: str


class ErrorOut(BaseModel):
    """Every 4xx answer: a message saying what is wrong and what to do."""

    detail: str
    type: str = Field(description="unauthenticated, forbidden, not_found, conflict, invalid ...")
    errors: list[FieldError] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "A body that cannot be read (not UTF-8 JSON)"},
    401: {
        "model": ErrorOut,
        "description": "No credentials, a scheme other than Bearer, or an invalid or expired token",
    },
    403: {"model": ErrorOut, "description": "A viewer asked for a change, or a missing CSRF token"},
    404: {"model": ErrorOut, "description": "Unknown DAG, run, task, asset, backfill or pool"},
    409: {"model": ErrorOut, "description": "Contradicts the current state"},
    422: {"model": ErrorOut, "description": "Invalid request: the message names the field"},
    429: {"model": ErrorOut, "description": "Too many wrong passwords for this username; see Retry-After"},
}


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="Matching items in all, not only on this page.")
    limit: int
    offset: int


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    schedulers: list[dict[str, Any]]


# -- DAGs -------------------------------------------------------------------------------------


class RunBrief(BaseModel):
    run_id: str
    state: str
    logical_date: datetime | None


class DagOut(BaseModel):
    dag_id: str
    dag_display_name: str = Field(description="dag_display_name, else the DAG id.")
    description: str | None
    fileloc: str
    is_paused: bool
    is_active: bool
    schedule: str | None = Field(description="The schedule in words: a cron, a preset or asset condition.")
    tags: list[str]
    next_run_logical_date: datetime | None
    next_run_after: datetime | None
    last_parsed_at: datetime | None
    import_error: str | None = Field(description="The DAG file's import error, if its last parse failed.")
    recent_runs: list[RunBrief] = Field(description="The latest runs, newest first (at most 5).")
    owner_links: dict[str, str] = Field(default_factory=dict, description="Owner name -> URL.")


class TaskOut(BaseModel):
    task_id: str
    display_name: str  # task_display_name, else the task id
    kind: str
    upstream: list[str]
    downstream: list[str]
    trigger_rule: str
    is_setup: bool
    is_teardown: bool
    is_mapped: bool
    retries: int
    pool: str | None
    queue: str | None
    outlets: list[str]
    inlets: list[str]
    group_id: str | None
    doc: str | None


class DagDetail(DagOut):
    start_date: str | None
    end_date: str | None
    catchup: bool
    max_active_runs: int
    max_active_tasks: int
    params: dict[str, Any]
    asset_trigger: dict[str, Any] | None
    tasks: list[TaskOut]


class DagPatch(Body):
    is_paused: bool


class ImportErrorOut(BaseModel):
    filename: str
    lineno: int | None
    message: str
    stacktrace: str
    timestamp: datetime


# -- runs -------------------------------------------------------------------------------------


class RunOut(BaseModel):
    dag_id: str
    run_id: str
    run_type: str
    state: str
    state_reason: str | None
    logical_date: datetime | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    run_after: datetime
    queued_at: datetime
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None
    conf: dict[str, Any]
    attempt: int
    backfill_id: int | None


class TriggerBody(Body):
    conf: JsonObject = Field(default_factory=dict, description="The run's conf; checked against params.")
    run_id: Name | None = Field(default=None, description="Default: manual__<time>.")
    logical_date: When | None = None


class RunPatch(Body):
    state: Literal["success", "failed"]


# -- task instances ---------------------------------------------------------------------------


class TaskInstanceOut(BaseModel):
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    label: str | None
    state: str
    state_reason: str | None
    try_number: int
    max_tries: int
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None
    hostname: str | None
    pool: str | None
    next_retry_at: datetime | None


class RenderedOut(BaseModel):
    try_number: int
    fields: dict[str, Any] = Field(description="Template field -> value as rendered, secrets masked.")
    renderers: dict[str, str] = Field(
        default_factory=dict,
        description="Field -> its operator's template_fields_renderers entry (bash, sql, …).",
    )


class LogOut(BaseModel):
    try_number: int
    content: str
    offset: int = Field(description="Where this content starts in the log, in bytes.")
    next_offset: int = Field(description="Ask again from here for what was written since.")
    complete: bool = Field(description="The attempt has ended: nothing more will be written.")
    found: bool = Field(
        description="False while the attempt has written nothing, or its log is on another host."
    )


class ClearBody(Body):
    run_id: Name | None = Field(default=None, description="Only this run (default: runs in the date range).")
    start_date: When | None = None
    end_date: When | None = None
    task_ids: list[Name] | None = Field(default=None, description="Only these tasks.")
    task_regex: Annotated[str, Field(max_length=1000), AfterValidator(_no_nul)] | None = None
    map_index: Annotated[int, Field(ge=-1, le=MAX_INT)] | None = None
    downstream: bool = False
    upstream: bool = False
    only_failed: bool = False
    dry_run: bool = False


class MarkBody(Body):
    state: Literal["success", "failed"]
    map_index: Annotated[int, Field(ge=-1, le=MAX_INT)] | None = Field(
        default=None, description="One instance of a mapped task (default: all of them)."
    )
    downstream: bool = False
    upstream: bool = False


class ChangedOut(BaseModel):
    run_id: str
    task_id: str
    map_index: int
    state: str = Field(description="The state before the change.")


class Changed(BaseModel):
    count: int
    items: list[ChangedOut]
    dry_run: bool = False


class GridTask(BaseModel):
    task_id: str
    display_name: str | None = None  # task_display_name, if set
    is_mapped: bool
    is_setup: bool
    is_teardown: bool
    group_id: str | None


class Grid(BaseModel):
    tasks: list[GridTask]
    runs: list[RunOut]
    total_runs: int
    cells: dict[str, dict[str, dict[str, int]]] = Field(
        description="run_id -> task_id -> state -> number of instances in that state."
    )
    mapped: dict[str, list[str]] = Field(
        description="run_id -> tasks that were mapped in that run (the DAG may have changed since)."
    )


# -- assets -----------------------------------------------------------------------------------


class AssetOut(BaseModel):
    name: str
    uri: str
    group: str
    events: int
    last_event: datetime | None
    producers: list[str] = Field(description="dag.task that list it in outlets.")
    consumers: list[str] = Field(description="DAGs scheduled on it.")
    readers: list[str] = Field(description="dag.task that list it in inlets.")


class AliasOut(BaseModel):
    name: str
    assets: list[str]
    producers: list[str]
    consumers: list[str]


class AssetEventOut(BaseModel):
    id: int
    asset_name: str
    asset_uri: str
    timestamp: datetime
    extra: dict[str, Any]
    source: str
    source_dag_id: str | None
    source_task_id: str | None
    source_run_id: str | None
    source_map_index: int | None


class EmitBody(Body):
    asset: Annotated[str, Field(min_length=1, max_length=1500), AfterValidator(_no_nul)]
    extra: JsonObject = Field(default_factory=dict)


class Emitted(BaseModel):
    event_id: int
    asset: str


# -- backfills --------------------------------------------------------------------------------


class BackfillBody(Body):
    dag_id: Name
    from_date: When = Field(description="First logical date, inclusive.")
    to_date: When = Field(description="Last logical date, inclusive.")
    reprocess_behavior: Literal["none", "failed", "completed"] = "none"
    max_active_runs: Annotated[int, Field(ge=1, le=10_000)] = 10
    run_backwards: bool = False
    conf: JsonObject = Field(default_factory=dict)


class BackfillOut(BaseModel):
    id: int
    dag_id: str
    from_date: datetime
    to_date: datetime
    reprocess_behavior: str
    max_active_runs: int
    run_backwards: bool
    conf: dict[str, Any]
    state: str
    created_at: datetime
    completed_at: datetime | None
    progress: dict[str, int] = Field(description="The backfill's runs by state.")
    total_runs: int
    done_runs: int


class PlannedRun(BaseModel):
    logical_date: datetime
    interval_start: datetime
    interval_end: datetime
    action: Literal["create", "rerun", "skip"]
    existing_run_id: str | None
    existing_state: str | None


class BackfillPlan(BaseModel):
    items: list[PlannedRun]
    create: int
    rerun: int
    skip: int


# -- pools ------------------------------------------------------------------------------------


class PoolOut(BaseModel):
    name: str
    slots: int
    description: str
    used: int


class PoolBody(Body):
    slots: Annotated[int, Field(ge=0, le=MAX_INT)]
    description: Annotated[str, Field(max_length=2000), AfterValidator(_no_nul)] | None = None


# -- users ------------------------------------------------------------------------------------


class TokenBody(Body):
    username: Annotated[str, Field(min_length=1, max_length=150), AfterValidator(_no_nul)]
    password: Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_no_nul)]
    name: Annotated[str, Field(min_length=1, max_length=150), AfterValidator(_no_nul)] = "api"


class TokenOut(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer <token>`; it is not shown again.")


class UserOut(BaseModel):
    username: str
    role: str
    created_at: datetime


class UserBody(Body):
    username: Annotated[str, Field(min_length=1, max_length=150), AfterValidator(_no_nul)]
    password: Annotated[str, Field(min_length=8, max_length=1000), AfterValidator(_no_nul)]
    role: Literal["admin", "viewer"] = "viewer"


# -- variables and connections ----------------------------------------------------------------


def _utf8(value: str) -> str:
    """Text that can be stored and encrypted: no NUL, no lone UTF-16 surrogates."""
    _no_nul(value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text (it has a lone surrogate)") from None
    return value


#: Variable keys and connection ids, as the store (and Airflow) allows them.
SECRET_KEY_PATTERN = r"^[A-Za-z0-9_.\-]{1,250}$"
#: A variable key or connection id in a URL path.
SecretKeyPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=250,
        pattern=SECRET_KEY_PATTERN,
        description="Letters, digits, '_', '-' or '.'.",
    ),
]
Clean = Annotated[str, AfterValidator(_utf8)]


class VariableOut(BaseModel):
    key: str
    value: str | None = Field(
        description='The value; "***" when the key is sensitive (password, token, ...).'
    )
    description: str | None
    masked: bool = Field(description="The key is sensitive, so the value is not shown.")
    updated_at: datetime


class VariableBody(Body):
    value: Annotated[str, Field(max_length=1_000_000), AfterValidator(_utf8)] = Field(
        description='The value as text. For a sensitive key, "***" keeps the stored value.'
    )
    description: Annotated[str, Field(max_length=5000), AfterValidator(_utf8)] | None = Field(
        default=None, description="Omitted: the stored description is kept."
    )


class VariablesImported(BaseModel):
    imported: int = Field(description="Variables set (created or replaced).")
    skipped: int = Field(description="Variables that existed and were left alone (overwrite=false).")


class ConnectionOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    conn_id: str
    conn_type: str
    description: str | None
    host: str | None
    schema_: str | None = Field(alias="schema")
    login: str | None
    password: str | None = Field(description='"***" when a password is set, else null; never the password.')
    port: int | None
    extra: dict[str, Any] | str | None = Field(
        description='The extra as an object, values under sensitive names as "***"; "***" for an '
        "extra that is text but not a JSON object."
    )


class ConnectionBody(Body):
    conn_type: Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_utf8)]
    description: Annotated[str, Field(max_length=5000), AfterValidator(_utf8)] | None = None
    host: Annotated[str, Field(max_length=500), AfterValidator(_utf8)] | None = None
    schema_: Annotated[str, Field(max_length=500), AfterValidator(_utf8)] | None = Field(
        default=None, alias="schema"
    )
    login: Annotated[str, Field(max_length=5000), AfterValidator(_utf8)] | None = None
    password: Annotated[str, Field(max_length=5000), AfterValidator(_utf8)] | None = Field(
        default=None, description='Omitted or "***": the stored password is kept. null: no password.'
    )
    port: Annotated[int, Field(ge=0, le=65535)] | None = None
    extra: JsonObject | None = Field(
        default=None, description='A JSON object; a value "***" under a sensitive name keeps the stored one.'
    )


class ConnectionTested(BaseModel):
    status: bool = Field(description="The connection's hook reached the system.")
    message: str
