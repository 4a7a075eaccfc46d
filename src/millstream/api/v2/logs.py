"""Airflow 3.3's task log endpoint: one attempt's log as structured lines.

Millstream writes an attempt's log as text, one file per attempt (the same file ``/api/v1``
reads; the object store's copy when the attempt ran on another host). Each line becomes
Airflow's ``StructuredLogMessage``: a JSON line (``[logging] json_logs``) as it is;
``[timestamp] LEVEL logger: message`` as its timestamp, level, logger and event; anything
else (what the task printed) as the event, with the last timestamp seen, as Airflow does.
The first page starts with Airflow's "Log message source details" group.

``Accept: application/json`` (or ``*/*``) gives ``{"content": [...], "continuation_token"}``,
``application/x-ndjson`` the lines one JSON object each, and ``text/plain`` (a Millstream
addition: Airflow 3.3 answers it 406) the log's text. The token (signed, as Airflow's) says
where to go on from; it is null once the attempt has ended and all of its log was read.
Without ``full_content`` a page is at most 1 MiB of log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Header, HTTPException, Path, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from itsdangerous import BadSignature, URLSafeSerializer

from millstream.api.deps import SettingsDep, StoreDep
from millstream.api.routes.runs import _read_chunk
from millstream.api.v2.common import ReadUser
from millstream.api.v2.task_instances_models import TaskInstancesLogResponse
from millstream.api.v2.task_instances_query import MAX_INT
from millstream.core.states import TERMINAL_TASK_STATES, TaskState
from millstream.errors import NotFoundError
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q
from millstream.store import users as users_q

router = APIRouter(tags=["Task Instance"])

JSON, NDJSON, TEXT, ANY = "application/json", "application/x-ndjson", "text/plain", "*/*"
_TEXT_LINE = re.compile(r"^\[(?P<ts>[^\]]{10,40})\] (?P<rest>.*)$", re.DOTALL)
_LEVELED = re.compile(
    r"^(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<logger>\S+): (?P<event>.*)$", re.DOTALL
)


def _accept(accept: str) -> str:
    for kind in (ANY, JSON, NDJSON, TEXT):
        if accept.startswith(kind):
            return kind
    raise HTTPException(406, "Only application/json or application/x-ndjson is supported")


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace(",", "."))
    except ValueError:
        return None


def structured(lines: list[str], last: str | None = None) -> list[dict[str, Any]]:
    """Log lines as Airflow's StructuredLogMessage dicts (``last``: the timestamp carried over)."""
    out: list[dict[str, Any]] = []
    for line in lines:
        if not line:
            continue
        msg: dict[str, Any] | None = None
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and isinstance(parsed.get("event"), str):
                msg = parsed
                when = _parse_time(str(parsed.get("timestamp") or ""))
                msg["timestamp"] = _iso(when) if when else parsed.get("timestamp")
        if msg is None and (m := _TEXT_LINE.match(line)) and (when := _parse_time(m["ts"])):
            msg = {"timestamp": _iso(when), "event": m["rest"]}
            if lv := _LEVELED.match(m["rest"]):
                msg.update(event=lv["event"], level=lv["level"].lower(), logger=lv["logger"])
        if msg is None:
            msg = {"timestamp": last, "event": line}
        last = msg.get("timestamp") or last
        out.append(msg)
    return out


def _serializer(store: Any) -> URLSafeSerializer:
    """Tokens signed with the key the API servers share (made when the app starts)."""
    with store.read() as conn:
        secret = users_q.session_secret(conn)
    return URLSafeSerializer(secret, salt="millstream-api-v2-log-token")


def _open(settings: Any, run: Any, ti: Any, try_number: int, ended: bool) -> tuple[BinaryIO | None, str]:
    from millstream.worker.runner import log_path

    path = log_path(
        settings.logs_folder, ti["dag_id"], run["run_id"], ti["task_id"], ti["map_index"], try_number
    )
    try:
        return open(path, "rb"), path
    except FileNotFoundError:
        pass
    if ended and settings.object_store_url:
        from millstream.store import objects

        url = objects.log_url(
            settings.object_store_url, ti["dag_id"], run["id"], ti["task_id"], ti["map_index"], try_number
        )
        return objects.open_bytes(url), url
    return None, path


def _read(f: BinaryIO, offset: int, ended: bool, full: bool) -> tuple[str, int, int]:
    if not full:
        return _read_chunk(f, offset, ended)
    text, size = "", offset
    while True:
        chunk, nxt, size = _read_chunk(f, offset, ended)
        text += chunk
        if nxt == offset or nxt >= size:
            return text, nxt, size
        offset = nxt


@router.get(
    "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}",
    response_model=TaskInstancesLogResponse,
    responses={
        200: {"content": {NDJSON: {"schema": {"type": "string"}}, TEXT: {"schema": {"type": "string"}}}}
    },
)
def get_log(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    try_number: Annotated[int, Path(ge=0, le=MAX_INT)],
    store: StoreDep,
    settings: SettingsDep,
    who: ReadUser,
    accept: Annotated[str, Header()] = ANY,
    full_content: bool = False,
    map_index: Annotated[int, Query(ge=-MAX_INT, le=MAX_INT)] = -1,
    token: str | None = None,
) -> Response:
    """One attempt's log (``try_number`` counts from 1)."""
    kind = _accept(accept)
    serializer = _serializer(store)
    meta: dict[str, Any] = {}
    if token:
        try:
            meta = dict(serializer.loads(token))
        except (BadSignature, TypeError, ValueError):
            raise HTTPException(
                400, "Bad Signature. Please use only the tokens provided by the API."
            ) from None
    full_content = full_content or bool(meta.get("download_logs"))
    with store.read() as conn:
        try:
            run = runs_q.get_run(conn, dag_id, dag_run_id)
        except NotFoundError:  # Airflow's one 404, whichever part is missing
            run = None
        ti = None if run is None else ti_q.find(conn, run["id"], task_id, map_index)
    if ti is None or not (1 <= try_number <= ti["try_number"] or try_number == ti["try_number"] == 0):
        raise HTTPException(404, "TaskInstance not found")
    header = [{"event": "::group::Log message source details"}]
    if try_number == 0:
        none = {"timestamp": _iso(datetime.now(UTC)), "event": "No logs available for this task."}
        if ti["state"] == TaskState.SKIPPED.value:
            none["event"] = "Task was skipped — no logs available."
        elif ti["state"] == TaskState.UPSTREAM_FAILED.value:
            none["event"] = "Task did not run because upstream task(s) failed."
        return _answer(kind, [*header, {"event": "::endgroup::"}, none], "", None)
    ended = (
        try_number < ti["try_number"]
        or TaskState(ti["state"]) in TERMINAL_TASK_STATES
        or ti["state"] in (TaskState.UP_FOR_RETRY.value, TaskState.UP_FOR_RESCHEDULE.value)
    )
    offset = int(meta.get("offset", 0))
    f, source = _open(settings, run, ti, try_number, ended)
    text, next_offset, size = "", offset, offset
    if f is not None:
        with f:
            text, next_offset, size = _read(f, offset, ended, full_content)
    lines = text.splitlines()
    if "offset" in meta:
        messages = structured(lines, meta.get("last"))
    else:
        sources = [source] if f is not None else []
        messages = [*header, *({"event": s} for s in sources), {"event": "::endgroup::"}, *structured(lines)]
    last = next((m["timestamp"] for m in reversed(messages) if m.get("timestamp")), meta.get("last"))
    state = {"offset": next_offset, "download_logs": full_content, "last": last}
    next_token = None if ended and next_offset >= size else serializer.dumps(state)
    return _answer(kind, messages, text, next_token)


def _answer(kind: str, messages: list[dict[str, Any]], text: str, next_token: str | None) -> Response:
    headers = {"Airflow-Continuation-Token": next_token} if next_token else None
    if kind == NDJSON:

        def lines() -> Iterator[str]:
            for m in messages:
                yield json.dumps(m) + "\n"

        return StreamingResponse(lines(), media_type=NDJSON, headers=headers)
    if kind == TEXT:
        return PlainTextResponse(text, headers=headers)
    body = TaskInstancesLogResponse(content=messages, continuation_token=next_token)
    return JSONResponse(body.model_dump(mode="json"))


@router.get("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/externalLogUrl/{try_number}")
def get_external_log_url(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    try_number: Annotated[int, Path(ge=1)],
    who: ReadUser,
    map_index: int = -1,
) -> None:
    """Millstream's logs are read through this API, not at an external address (Airflow
    answers so for a log handler without external links)."""
    raise HTTPException(400, "Task log handler does not support external logs.")
