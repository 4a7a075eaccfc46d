"""Runs one attempt of one task instance: context, inputs, call, result, log.

The same code runs inline (``dags test``) and in the local executor's worker processes;
only the way the DAG is found (``resolve_dag``) and the store differ.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import socket
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from millstream.core.planner import Output
from millstream.errors import FailTask, SkipTask, TaskFlowError
from millstream.sdk.context import CONTEXT_KEYS, set_current_context
from millstream.sdk.dag import DAG
from millstream.sdk.task import Task
from millstream.sdk.xcom import DagParam, XComArg
from millstream.worker.item import AttemptResult, WorkItem
from millstream.worker.results import LazyResults, ResultReader

HOSTNAME = socket.gethostname()

DagResolver = Callable[[str, str], DAG]  # (fileloc, dag_id) -> DAG


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, LazyResults):
        return list(value)
    raise TypeError(type(value).__name__)


def to_json(value: Any, task_id: str) -> str:
    try:
        return json.dumps(value, default=_json_default, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise TaskFlowError(
            f"task {task_id!r} returned a value that cannot be stored as a result ({e}); return "
            "JSON-compatible data (str, int, float, bool, None, lists and dicts of them), or "
            "write large data to storage and return its path"
        ) from None


@dataclass(frozen=True)
class TaskInstanceInfo:
    """``context["ti"]``: which attempt this is, and a way to pull other tasks' results."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    _reader: ResultReader
    _run_pk: int
    _mapped_tasks: frozenset[str]

    def xcom_pull(self, task_ids: str | list[str] | None = None, key: str = "return_value") -> Any:
        ids = [self.task_id] if task_ids is None else task_ids
        if isinstance(ids, str):
            return self._pull(ids, key)
        return [self._pull(t, key) for t in ids]

    def _pull(self, task_id: str, key: str) -> Any:
        if task_id in self._mapped_tasks:
            return LazyResults(self._reader, self._run_pk, task_id, key)
        return self._reader.get(self._run_pk, task_id, -1, key)


@dataclass(frozen=True)
class DagRunInfo:
    dag_id: str
    run_id: str
    run_type: str
    conf: Mapping[str, Any]
    logical_date: datetime | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None


class _Resolver:
    """Turns XComArgs and DagParams in a task's arguments into run-time values."""

    def __init__(self, item: WorkItem, dag: DAG, reader: ResultReader) -> None:
        self.item = item
        self.dag = dag
        self.reader = reader

    def value(self, v: Any) -> Any:
        if isinstance(v, XComArg):
            if v.operator.is_mapped:
                return LazyResults(self.reader, self.item.run_pk, v.task_id, v.key)
            return self.reader.get(self.item.run_pk, v.task_id, -1, v.key)
        if isinstance(v, DagParam):
            return self.item.params.get(v.name, v.default)
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, tuple):
            return tuple(self.value(x) for x in v)
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items()}
        return v

    def mapped(self, expand_kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The element of each mapped argument for this map index (cartesian product)."""
        columns: list[tuple[str, Callable[[int], Any], int]] = []
        for name, src in expand_kwargs.items():
            if isinstance(src, XComArg) and src.operator.is_mapped:
                n = sum(1 for _ in self._upstream_indexes(src))
                columns.append((name, functools.partial(self._upstream_value, src), n))
                continue
            seq = self.value(src) if isinstance(src, XComArg) else src
            if isinstance(seq, dict):
                seq = list(seq.items())
            if not isinstance(seq, (list, tuple)):
                raise TaskFlowError(
                    f"cannot map argument {name!r} of task {self.item.task_id!r}: got "
                    f"{type(seq).__name__}, expected a list or dict"
                )
            columns.append((name, seq.__getitem__, len(seq)))
        out: dict[str, Any] = {}
        rest = self.item.map_index
        for name, get, n in reversed(columns):  # the last argument varies fastest
            rest, j = divmod(rest, n) if n else (rest, 0)
            out[name] = get(j)
        return dict(reversed(list(out.items())))

    def _upstream_value(self, src: XComArg, j: int) -> Any:
        return self.reader.get(self.item.run_pk, src.task_id, j, src.key)

    def _upstream_indexes(self, src: XComArg) -> Iterator[int]:
        with self.reader.store.read() as conn:
            from millstream.store import task_instances

            for row in task_instances.list_for_run(conn, self.item.run_pk, src.task_id):
                yield row["map_index"]


def build_context(item: WorkItem, dag: DAG, task: Task, reader: ResultReader) -> dict[str, Any]:
    ld = item.logical_date
    mapped = frozenset(t for t, o in dag.tasks.items() if o.is_mapped)
    ti = TaskInstanceInfo(
        item.dag_id, item.run_id, item.task_id, item.map_index, item.try_number, reader, item.run_pk, mapped
    )
    run = DagRunInfo(
        item.dag_id,
        item.run_id,
        item.run_type,
        item.conf,
        ld,
        item.data_interval_start,
        item.data_interval_end,
    )
    return {
        "dag": dag,
        "task": task,
        "ti": ti,
        "task_instance": ti,
        "dag_run": run,
        "run_id": item.run_id,
        "map_index": item.map_index,
        "logical_date": ld,
        "ds": ld.strftime("%Y-%m-%d") if ld else None,
        "ds_nodash": ld.strftime("%Y%m%d") if ld else None,
        "ts": ld.isoformat() if ld else None,
        "data_interval_start": item.data_interval_start,
        "data_interval_end": item.data_interval_end,
        "params": dict(item.params),
        "conf": dict(item.conf),
        "triggering_asset_events": {},
        "outlet_events": {},
        "inlet_events": {},
    }


class _TaskLog(logging.Handler):
    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.write(self.format(record) + "\n")


@contextlib.contextmanager
def capture_to(path: str) -> Iterator[TextIO]:
    """Send print() output and logging of the attempt to its own log file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", buffering=1) as f:
        handler = _TaskLog(f)
        root = logging.getLogger()
        root.addHandler(handler)
        old_level = root.level
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
        with contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            try:
                yield f
            finally:
                root.removeHandler(handler)
                root.setLevel(old_level)


def _call_kwargs(task: Task, resolver: _Resolver, ctx: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    args = [resolver.value(a) for a in task.op_args]
    kwargs = {k: resolver.value(v) for k, v in task.op_kwargs.items()}
    if task.is_mapped:
        kwargs.update(resolver.mapped(task.expand_kwargs))
    fn = task.python_callable
    if fn is None:
        return args, kwargs
    import inspect

    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for k, v in ctx.items():
            kwargs.setdefault(k, v)
    else:
        for name in params:
            if name in CONTEXT_KEYS and name not in kwargs:
                kwargs[name] = ctx[name]
        # Positional arguments already given must not be passed twice by name.
        for name in list(params)[: len(args)]:
            kwargs.pop(name, None)
    return args, kwargs


def _render_label(template: str | None, kwargs: Mapping[str, Any], map_index: int) -> str | None:
    if map_index < 0 or not template:
        return None
    try:
        return template.replace("{{", "{").replace("}}", "}").format(**kwargs).strip()[:1000]
    except (KeyError, IndexError, ValueError, AttributeError):
        return None


def _run_bash(command: str, env: Mapping[str, str] | None, log: TextIO) -> str:
    proc = subprocess.Popen(
        ["bash", "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    last = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        log.write(line)
        if line.strip():
            last = line.rstrip("\n")
    code = proc.wait()
    if code == 99:
        raise SkipTask("bash command exited with code 99")
    if code != 0:
        raise RuntimeError(f"bash command exited with code {code}")
    return last


def _output_of(task: Task, value: Any) -> tuple[list[tuple[str, str, int | None, str]], Output]:
    def meta(v: Any) -> tuple[int | None, str]:
        return (len(v) if isinstance(v, (list, tuple, dict)) else None), type(v).__name__

    rows: list[tuple[str, str, int | None, str]] = []
    length, type_name = meta(value)
    rows.append(("return_value", to_json(value, task.task_id), length, type_name))
    key_lengths: dict[str, int | None] = {}
    if task.config["multiple_outputs"]:
        if not isinstance(value, dict):
            raise TaskFlowError(
                f"task {task.task_id!r} has multiple_outputs=True but returned "
                f"{type(value).__name__}, not a dict"
            )
        for k, v in value.items():
            kl, kt = meta(v)
            rows.append((str(k), to_json(v, task.task_id), kl, kt))
            key_lengths[str(k)] = kl
    return rows, Output(length=length, type_name=type_name, key_lengths=key_lengths)


def _branch_follow(task: Task, value: Any) -> tuple[str, ...]:
    if value is None:
        chosen: tuple[str, ...] = ()
    elif isinstance(value, str):
        chosen = (value,)
    elif isinstance(value, (list, tuple, set)) and all(isinstance(v, str) for v in value):
        chosen = tuple(value)
    else:
        raise TaskFlowError(
            f"branch task {task.task_id!r} must return a task id, a list of task ids or None, "
            f"got {type(value).__name__}"
        )
    bad = [t for t in chosen if t not in task.downstream_task_ids]
    if bad:
        raise TaskFlowError(
            f"branch task {task.task_id!r} returned {bad}, which are not its direct downstream "
            f"tasks; choose from {sorted(task.downstream_task_ids)}"
        )
    return chosen


def run_attempt(item: WorkItem, resolve_dag: DagResolver, reader: ResultReader) -> AttemptResult:
    """Run ``item`` and return its outcome; never raises for a failure of user code."""
    started = datetime.now(UTC)
    t0 = time.monotonic()
    label = None
    with capture_to(item.log_path) as log:
        print(f"[{started.isoformat()}] starting {item.describe()} (pid {os.getpid()})", file=log)
        try:
            dag = resolve_dag(item.fileloc, item.dag_id)
            task = dag.get_task(item.task_id)
            ctx = build_context(item, dag, task, reader)
            resolver = _Resolver(item, dag, reader)
            args, kwargs = _call_kwargs(task, resolver, ctx)
            label = _render_label(task.config["map_index_template"], kwargs, item.map_index)
            with set_current_context(ctx):
                if task.kind == "bash":
                    command = (
                        task.python_callable(*args, **kwargs)
                        if task.python_callable
                        else kwargs["bash_command"]
                    )
                    value = _run_bash(str(command), None if task.python_callable else kwargs.get("env"), log)
                else:
                    assert task.python_callable is not None
                    value = task.python_callable(*args, **kwargs)
            rows, output = _output_of(task, value)
            if task.kind == "branch":
                output = Output(
                    output.length, output.type_name, output.key_lengths, follow=_branch_follow(task, value)
                )
            elif task.kind == "short_circuit":
                output = Output(output.length, output.type_name, output.key_lengths, short_circuit=not value)
                if not value:
                    print("condition is falsy: skipping downstream tasks", file=log)
            state, error, retryable = "success", None, True
        except SkipTask as e:
            rows, output, state, error, retryable = [], None, "skipped", str(e) or "skipped", False
            print(f"task skipped: {error}", file=log)
        except FailTask as e:
            rows, output, state, error, retryable = [], None, "failed", str(e) or "failed", False
            traceback.print_exc(file=log)
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            rows, output, state, retryable = [], None, "failed", True
            error = f"{type(e).__name__}: {e}"
            traceback.print_exc(file=log)
        elapsed = time.monotonic() - t0
        print(f"[{datetime.now(UTC).isoformat()}] {state} after {elapsed:.3f}s", file=log)
    return AttemptResult(
        item=item,
        state=state,
        started_at=started,
        ended_at=datetime.now(UTC),
        results=rows,
        output=output,
        error=error,
        retryable=retryable,
        label=label,
        pid=os.getpid(),
        hostname=HOSTNAME,
    )


def log_path(
    base: str | os.PathLike[str], dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
) -> str:
    parts = [f"dag_id={dag_id}", f"run_id={run_id}", f"task_id={task_id}"]
    if map_index >= 0:
        parts.append(f"map_index={map_index}")
    safe = [p.replace("/", "_").replace(":", "_").replace("+", "_") for p in parts]
    return str(Path(base, *safe, f"attempt={try_number}.log"))


def read_log(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
