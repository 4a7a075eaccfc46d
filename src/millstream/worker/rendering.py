"""The attempt's own operator: unmapped for its map index, template fields rendered.

The DAG a worker holds is cached and shared by many attempts, so nothing here changes
it: each attempt renders into a shallow copy of its task (or, for a mapped operator
class, into a fresh instance built from the fixed and mapped arguments).

As in Airflow, values that come from other tasks' results are resolved but never
rendered again, literal mapped values are rendered like any argument, and the rendered
copy is what ``context["task"]`` shows.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

from millstream.sdk.baseoperator import MappedOperator
from millstream.sdk.mapping import KWARGS_ARG
from millstream.sdk.masking import redact
from millstream.sdk.task import Task
from millstream.sdk.templating import Renderer
from millstream.sdk.xcom import ConcatArg, DagParam, MapArg, MappedArgument, XComArg, ZipArg

_RESOLVABLE = (XComArg, MapArg, ZipArg, ConcatArg, MappedArgument, DagParam)
_LITERAL = (list, tuple, dict)


class _SkippingRenderer(Renderer):
    """Leaves alone the given objects (mapped values read from other tasks' results)."""

    skip: frozenset[int] = frozenset()

    def render(self, value: Any, exts: tuple[str, ...] = (), seen: set[int] | None = None) -> Any:
        if id(value) in self.skip:
            return value
        return super().render(value, exts, seen)


def prepare(
    task: Task,
    context: Mapping[str, Any],
    resolve: Callable[[Any], Any],
    mapped_values: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> tuple[Task, bool]:
    """The operator this attempt runs, its template fields rendered against ``context``,
    and whether any Jinja template was rendered (only then are the fields worth keeping)."""
    skip: set[int] = set()
    values: dict[str, Any] = {}
    if task.expand_kwargs:
        values = mapped_values(task.expand_kwargs)
        for name, src in task.expand_kwargs.items():
            if isinstance(src, _LITERAL):
                continue
            if name == KWARGS_ARG:
                skip.update(id(v) for v in values.values())
            elif name in values:
                skip.add(id(values[name]))
    if isinstance(task, MappedOperator):
        op: Task = task.unmap(values)
    else:
        op = copy.copy(task)
        if values:
            op.op_kwargs = {**task.op_kwargs, **values}
    renderer = _SkippingRenderer(
        task.dag,
        context,
        resolvable=_RESOLVABLE,
        resolve=resolve,
        where=task.where,
        native=task.config["render_template_as_native_obj"],
    )
    renderer.skip = frozenset(skip)
    renderer.render_fields(op, op.template_fields, tuple(op.template_ext))
    return op, renderer.templates_rendered > 0


#: A rendered field longer than this is cut (the UI and API show where).
FIELD_LIMIT = 16384


def rendered_fields(op: Task) -> dict[str, Any]:
    """The attempt's template fields as they ran: JSON values, secrets masked, long
    text cut. What ``millstream tasks render``, the API and the UI's Rendered tab show."""
    out: dict[str, Any] = {}
    for name in op.template_fields:
        value = redact(_jsonable(getattr(op, name, None)), name)
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        if len(text) > FIELD_LIMIT:
            value = text[:FIELD_LIMIT] + f"… ({len(text)} characters in all)"
        out[name] = value
    return out


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)
