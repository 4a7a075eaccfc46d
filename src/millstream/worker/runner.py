"""Runs one attempt of one task instance: context, inputs, call, result, log.

The same code runs inline (``dags test``) and in the local executor's worker processes;
only the way the DAG is found (``resolve_dag``) and the store differ.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

from jinja2.sandbox import SandboxedEnvironment

from millstream.core.planner import Output
from millstream.errors import FailTask, SkipTask, TaskFlowError
from millstream.sdk import deferral
from millstream.sdk.accessors import ConnectionAccessor, VariableAccessor
from millstream.sdk.baseoperator import BaseOperator
from millstream.sdk.context import set_current_context
from millstream.sdk.dag import DAG
from millstream.sdk.deferral import TaskDeferred
from millstream.sdk.execution import Reschedule, SensorTimeout
from millstream.sdk.mapping import KWARGS_ARG
from millstream.sdk.masking import MaskingWriter
from millstream.sdk.standard.branch import branch_follow
from millstream.sdk.standard.cross_dag import DagRunTriggerException
from millstream.sdk.task import Task
from millstream.sdk.templating import MACROS
from millstream.sdk.xcom import (
    NOTSET,
    ConcatArg,
    DagParam,
    MapArg,
    MappedArgument,
    XComArg,
    ZipArg,
)
from millstream.store import objects
from millstream.worker import cross_dag, log_echo, logformat, mail, stopping, tracing
from millstream.worker.assets import InletEventAccessors, OutletEventAccessors, TriggeringAssetEvents
from millstream.worker.callbacks import call_all
from millstream.worker.instance import DagRunInfo, TaskInstanceInfo, to_json
from millstream.worker.item import AttemptResult, WorkItem
from millstream.worker.rendering import prepare, rendered_fields
from millstream.worker.results import (
    ConcatSequence,
    LazyResults,
    MappedSequence,
    ResultReader,
    UpstreamInstances,
    ZippedSequence,
)

HOSTNAME = socket.gethostname()

DagResolver = Callable[[str, str], DAG]  # (fileloc, dag_id) -> DAG


class _Resolver:
    """Turns XComArgs, mapped arguments and DagParams into run-time values."""

    def __init__(self, item: WorkItem, task: Task, reader: ResultReader) -> None:
        self.item = item
        self.task = task
        self.reader = reader
        self._group_values: dict[str, Any] | None = None

    def value(self, v: Any) -> Any:
        if isinstance(v, XComArg):
            op = v.operator
            if self.item.map_index >= 0 and self.task.mapped_group is not None and self.task.aligned_with(op):
                return self.reader.get(self.item.run_pk, v.task_id, self.item.map_index, v.key)
            if op.is_mapped:
                return LazyResults(self.reader, self.item.run_pk, v.task_id, v.key)
            return self.reader.get(self.item.run_pk, v.task_id, -1, v.key)
        if isinstance(v, (MapArg, ZipArg, ConcatArg)):
            return self.sequence(v, "argument")
        if isinstance(v, MappedArgument):
            return self.group_values()[v.name]
        if isinstance(v, DagParam):
            return self.item.params.get(v.name, v.default)
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, tuple):
            return tuple(self.value(x) for x in v)
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items()}
        return v

    def sequence(self, src: Any, name: str) -> Sequence[Any]:
        """What ``src`` maps over, as a sequence read lazily where it can be."""
        if isinstance(src, XComArg):
            if src.operator.is_mapped:
                return UpstreamInstances(self.reader, self.item.run_pk, src.task_id, src.key)
            src = self.reader.get(self.item.run_pk, src.task_id, -1, src.key)
        elif isinstance(src, MapArg):
            return MappedSequence(self.sequence(src.source, name), src.fn)
        elif isinstance(src, ZipArg):
            parts = [self.sequence(p, name) for p in src.parts]
            return ZippedSequence(parts, None if src.fillvalue is NOTSET else (src.fillvalue,))
        elif isinstance(src, ConcatArg):
            return ConcatSequence([self.sequence(p, name) for p in src.parts])
        if isinstance(src, dict):
            return list(src.items())
        if isinstance(src, (list, tuple)):
            return src
        raise TaskFlowError(
            f"cannot map argument {name!r} of task {self.item.task_id!r} of DAG {self.item.dag_id!r}: "
            f"got {type(src).__name__}, expected a list or dict"
        )

    def mapped(self, expand: Mapping[str, Any]) -> dict[str, Any]:
        """The element of each mapped argument for this map index (cartesian product, the
        last argument varying fastest, as ``itertools.product``)."""
        columns = [(name, self.sequence(src, name)) for name, src in expand.items()]
        out: dict[str, Any] = {}
        rest = self.item.map_index
        for name, seq in reversed(columns):
            rest, j = divmod(rest, len(seq)) if len(columns) > 1 else (0, rest)
            value = seq[j]
            if name == KWARGS_ARG:
                if not isinstance(value, dict):
                    raise TaskFlowError(
                        f"expand_kwargs of task {self.item.task_id!r}: element {j} is a "
                        f"{type(value).__name__}, expected a dict of arguments"
                    )
                out.update(value)
            else:
                out[name] = value
        return out

    def group_values(self) -> dict[str, Any]:
        """This instance's values of its expanded task group's arguments."""
        if self._group_values is None:
            group = self.task.mapped_group
            assert group is not None and group.mapped_input is not None
            self._group_values = self.mapped(group.mapped_input)
        return self._group_values


def build_context(item: WorkItem, dag: DAG, task: Task, reader: ResultReader) -> dict[str, Any]:
    ld = item.logical_date
    mapped = frozenset(t for t, o in dag.tasks.items() if o.is_mapped)
    ti = TaskInstanceInfo(
        item.dag_id,
        item.run_id,
        item.task_id,
        item.map_index,
        item.try_number,
        reader,
        item.run_pk,
        mapped,
        item.sensor_started_at,
        context_carrier=tracing.carrier(item),
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
        "ts_nodash": ld.strftime("%Y%m%dT%H%M%S") if ld else None,
        "ts_nodash_with_tz": ld.isoformat().replace("-", "").replace(":", "") if ld else None,
        "task_instance_key_str": f"{item.dag_id}__{item.task_id}__{ld.strftime('%Y%m%d') if ld else ''}",
        "macros": MACROS,
        "prev_start_date_success": item.prev_start_date_success,
        "data_interval_start": item.data_interval_start,
        "data_interval_end": item.data_interval_end,
        "prev_data_interval_start_success": item.prev_success_interval[0],
        "prev_data_interval_end_success": item.prev_success_interval[1],
        "params": _params(item, task),
        "conf": dict(item.conf),
        "triggering_asset_events": TriggeringAssetEvents(
            reader.store if item.run_type == "asset_triggered" else None, item.run_pk
        ),
        "outlet_events": OutletEventAccessors(task.task_id, task.config["outlets"]),
        "inlet_events": InletEventAccessors(reader.store, task.task_id, task.config["inlets"]),
        "var": VariableAccessor(),
        "conn": ConnectionAccessor(),
    }


def _params(item: WorkItem, task: Task) -> dict[str, Any]:
    """The run's params with the task's own merged over the DAG's; a key the run's conf
    sets keeps the conf's value (Airflow's dag_run_conf_overrides_params). The task's
    Params are checked by their schemas here, as the attempt starts."""
    own = task.config["params"]
    if not own:
        return dict(item.params)
    from millstream.errors import ParamValidationError
    from millstream.sdk.params import params_to_dict, resolve_params

    given = {k: item.conf[k] for k in own if k in item.conf}
    try:
        mine = resolve_params(params_to_dict(own), given)
    except ParamValidationError as e:
        raise ParamValidationError(f"task {task.task_id!r}: {e}") from None
    return {**item.params, **mine}


class _TaskLog(logging.Handler):
    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.setFormatter(logformat.task_log_formatter())  # [logging] json_logs: JSON records

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.write(self.format(record) + "\n")


@contextlib.contextmanager
def capture_to(path: str, label: str = "") -> Iterator[TextIO]:
    """Send print() output and logging of the attempt to its own log file (and, under
    ``dags test``, echo each line, prefixed with ``label``, as it is written)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", buffering=1) as raw:
        echo = log_echo.current()
        tee = log_echo.EchoWriter(raw, echo, label) if echo is not None else None
        # Secrets read from Variables and Connections show as ***, in the file and the echo.
        f = cast(TextIO, MaskingWriter(tee if tee is not None else raw))
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
                if tee is not None:
                    tee.flush_echo()


_LABELS = SandboxedEnvironment(autoescape=False)


def render_label(
    template: str | None, ctx: Mapping[str, Any], kwargs: Mapping[str, Any], map_index: int
) -> str | None:
    """A mapped instance's label from ``map_index_template`` (Jinja, as in Airflow).

    Rendered after the call, so a task can set a context value for it, as in Airflow:
    ``get_current_context()["label"] = ...`` with ``map_index_template="{{ label }}"``.
    Arguments are available by name too (``"{{ filename }}"``). A template that fails to
    render leaves the instance unlabelled rather than failing the work it did.
    """
    if map_index < 0 or not template:
        return None
    try:
        return _LABELS.from_string(template).render({**ctx, **kwargs}).strip()[:1000] or None
    except Exception:  # noqa: BLE001
        return None


Row = tuple[str, str, int | None, str, str | None]


def _offload(rows: list[tuple[str, str, int | None, str]], item: WorkItem) -> list[Row]:
    """Results larger than the inline limit go to the object store; their rows keep the
    length and type (the planner expands from those) and the URL instead of the value."""
    out: list[Row] = []
    for key, text, length, type_name in rows:
        if item.result_store_url and len(text.encode()) > item.inline_limit:
            url = objects.result_url(
                item.result_store_url,
                item.dag_id,
                item.run_pk,
                item.task_id,
                item.map_index,
                item.try_number,
                key,
            )
            objects.write(url, text)
            out.append((key, "", length, type_name, url))
        else:
            out.append((key, text, length, type_name, None))
    return out


def _output_of(task: Task, value: Any, item: WorkItem, pushed: Mapping[str, Any]) -> tuple[list[Row], Output]:
    def meta(v: Any) -> tuple[int | None, str]:
        return (len(v) if isinstance(v, (list, tuple, dict)) else None), type(v).__name__

    rows: list[tuple[str, str, int | None, str]] = []
    key_lengths: dict[str, int | None] = {}
    for k, v in pushed.items():  # ti.xcom_push; the return value wins a clash, as in Airflow
        kl, kt = meta(v)
        rows.append((k, to_json(v, task.task_id), kl, kt))
        key_lengths[k] = kl
    length, type_name = meta(value)
    if not task.config["do_xcom_push"]:
        return _offload(rows, item), Output(length=length, type_name=type_name, key_lengths=key_lengths)
    rows.append(("return_value", to_json(value, task.task_id), length, type_name))
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
    rows = list({r[0]: r for r in rows}.values())  # one row per key: the last written wins
    return _offload(rows, item), Output(length=length, type_name=type_name, key_lengths=key_lengths)


def _short_repr(value: Any, limit: int = 1000) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


@tracing.attempt_context  # traces on: the task runs under its attempt's span
@logformat.attempt_ids  # JSON logs: what the attempt logs carries its ids
def run_attempt(
    item: WorkItem, resolve_dag: DagResolver, reader: ResultReader, *, alarm: bool = False
) -> AttemptResult:
    """Run ``item`` and return its outcome; never raises for a failure of user code.

    ``alarm``: enforce ``execution_timeout`` here with SIGALRM (the caller's own process,
    as ``dags test``); worker pools enforce it from outside instead."""
    started = datetime.now(UTC)
    t0 = time.monotonic()
    label_inputs: tuple[str | None, dict[str, Any], dict[str, Any]] | None = None
    callback_ctx: tuple[Task, dict[str, Any]] | None = None
    reschedule_at: datetime | None = None
    trigger: dict[str, Any] | None = None
    asset_events: list[dict[str, Any]] = []
    rendered: dict[str, Any] | None = None
    tb: str | None = None  # the traceback of a failure, as printed to the log
    with capture_to(item.log_path, item.instance) as log:
        print(f"[{started.isoformat()}] starting {item.describe()} (pid {os.getpid()})", file=log)
        try:
            reader.use_version(item.run_pk, item.run_version)
            dag = resolve_dag(item.fileloc, item.dag_id)
            task = dag.get_task(item.task_id)
            ctx = build_context(item, dag, task, reader)
            resolver = _Resolver(item, task, reader)
            callback_ctx = (task, ctx)
            label_inputs = (task.config["map_index_template"], ctx, {})
            op, any_template = prepare(task, ctx, resolver.value, resolver.mapped)
            if any_template:
                rendered = rendered_fields(op)
            ctx["task"] = op
            label_inputs = (task.config["map_index_template"], ctx, dict(op.op_kwargs))
            with set_current_context(ctx):
                # Airflow's order: the pre_execute hooks, on_execute_callback, execute,
                # then the post_execute hooks (given the result).
                if task.config["pre_execute"]:
                    task.config["pre_execute"](ctx)
                op.pre_execute(ctx)
                call_all(task.config["on_execute_callback"], ctx, "on_execute_callback", log)
                with stopping.running(op), stopping.timeout_alarm(item.execution_timeout if alarm else None):
                    if item.next_method and isinstance(op, BaseOperator):  # its trigger fired
                        value = op.resume_execution(item.next_method, deferral.loads(item.next_kwargs), ctx)
                    else:
                        try:
                            value = op.execute(ctx)
                        except DagRunTriggerException as e:
                            value = cross_dag.trigger_dag_run(e, task.task_id, ctx["ti"], reader)
                if inspect.isgenerator(value):  # a task that yields Metadata(asset, extra)
                    value = ctx["outlet_events"].take(value)
                if task.config["post_execute"]:
                    task.config["post_execute"](ctx, value)
                op.post_execute(ctx, value)
            if task.config["show_return_value_in_logs"] and value is not None:
                print(f"returned: {_short_repr(value)}", file=log)
            rows, output = _output_of(task, value, item, ctx["ti"].pushed)
            if task.kind == "branch":
                output = Output(
                    output.length, output.type_name, output.key_lengths, follow=branch_follow(task, value)
                )
            elif task.kind == "short_circuit":
                output = Output(output.length, output.type_name, output.key_lengths, short_circuit=not value)
                if not value:
                    print("condition is falsy: skipping downstream tasks", file=log)
            asset_events = ctx["outlet_events"].events()
            state, error, retryable = "success", None, True
        except TaskDeferred as e:
            rows, output, error, retryable = [], None, None, True
            try:
                trigger = deferral.serialized(e, op, started)
                state = "deferred"
                print(f"deferring: waiting on {trigger['classpath']}, resuming at {e.method_name}", file=log)
            except Exception as bad:  # noqa: BLE001 - user code: fails only this task
                state, error = "failed", f"{type(bad).__name__}: {bad}"
                tb = _print_traceback(log)
        except Reschedule as e:
            rows, output, state, error, retryable = [], None, "reschedule", None, True
            reschedule_at = e.at
        except SensorTimeout as e:
            soft = bool(callback_ctx and callback_ctx[0].config.get("soft_fail"))
            rows, output, error, retryable = [], None, str(e), False
            state = "skipped" if soft else "failed"
            print(f"{error}; {'skipping (soft_fail)' if soft else 'failing'}", file=log)
        except SkipTask as e:
            rows, output, state, error, retryable = [], None, "skipped", str(e) or "skipped", False
            print(f"task skipped: {error}", file=log)
        except FailTask as e:
            rows, output, state, error, retryable = [], None, "failed", str(e) or "failed", False
            tb = _print_traceback(log)
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            rows, output, state, retryable = [], None, "failed", True
            error = f"{type(e).__name__}: {e}"
            tb = _print_traceback(log)
        if callback_ctx is not None and state not in ("reschedule", "deferred"):
            _task_callbacks(callback_ctx, state, error, retryable, item, log)
        elapsed = time.monotonic() - t0
        # Failed instances are labelled too: that is when a label helps most.
        label = render_label(*label_inputs, item.map_index) if label_inputs else None
        labelled = f" ({label})" if label else ""
        print(f"[{datetime.now(UTC).isoformat()}] {state} after {elapsed:.3f}s{labelled}", file=log)
    return AttemptResult(
        item=item,
        state=state,
        started_at=started,
        ended_at=datetime.now(UTC),
        results=rows,
        output=output,
        rendered=rendered,
        error=error,
        retryable=retryable,
        label=label,
        pid=os.getpid(),
        hostname=HOSTNAME,
        callbacks_done=callback_ctx is not None,
        reschedule_at=reschedule_at,
        trigger=trigger if state == "deferred" else None,
        asset_events=asset_events if state == "success" else [],
        traceback=tb if state == "failed" else None,
    )


_ENGINE_DIR = str(Path(__file__).resolve().parent.parent)


def _print_traceback(log: TextIO) -> str:
    """Print the exception being handled to the log and return the same text.

    The frames of Millstream's own call into the task come first in every traceback and
    say nothing about the failure, so they are left out; frames below the task's code
    (a hook it called, say) stay."""
    exc = sys.exc_info()[1]
    assert exc is not None
    te = traceback.TracebackException.from_exception(exc)
    frames = list(te.stack)
    skip = 0
    while skip < len(frames) - 1 and frames[skip].filename.startswith(_ENGINE_DIR):
        skip += 1
    te.stack = traceback.StackSummary.from_list(frames[skip:])
    text = "".join(te.format())
    log.write(text)
    return text


def _task_callbacks(
    callback_ctx: tuple[Task, dict[str, Any]],
    state: str,
    error: str | None,
    retryable: bool,
    item: WorkItem,
    log: TextIO,
) -> None:
    task, ctx = callback_ctx
    if state == "success":
        kind = "on_success_callback"
    elif state == "skipped":
        kind = "on_skipped_callback"
    elif retryable and item.try_number <= item.max_tries:
        kind = "on_retry_callback"
    else:
        kind = "on_failure_callback"
    if error:
        ctx = {**ctx, "exception": error}
    ti = ctx.get("ti")
    if isinstance(ti, TaskInstanceInfo):  # callbacks (and notifiers' templates) ask ti.state
        ti = dataclasses.replace(ti, state="up_for_retry" if kind == "on_retry_callback" else state)
        ctx = {**ctx, "ti": ti, "task_instance": ti}
    call_all(task.config[kind], ctx, kind, log)
    mail.send_task_alert(
        task.config,
        kind,
        dag_id=item.dag_id,
        run_id=item.run_id,
        task_id=item.task_id,
        map_index=item.map_index,
        try_number=item.try_number,
        error=error,
        log=log,
    )


def log_path(
    base: str | os.PathLike[str], dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
) -> str:
    parts = [f"dag_id={dag_id}", f"run_id={run_id}", f"task_id={task_id}"]
    if map_index >= 0:
        parts.append(f"map_index={map_index}")
    safe = [p.replace("/", "_").replace(":", "_").replace("+", "_") for p in parts]
    return str(Path(base, *safe, f"attempt={try_number}.log"))


def callbacks_log_path(base: str | os.PathLike[str], dag_id: str, run_id: str) -> str:
    """Where a run's DAG-level callbacks write (beside its task folders)."""
    folder = Path(log_path(base, dag_id, run_id, "x", -1, 1)).parent.parent
    return str(folder / "callbacks.log")


def read_log(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
