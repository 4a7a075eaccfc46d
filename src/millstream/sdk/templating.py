"""Jinja templating of task fields, with Airflow's environment, filters and macros.

A task's template fields are rendered just before it runs, against its context. Each DAG
has one environment (built on first use and cached on the DAG): its loader looks in the
DAG file's folder and ``template_searchpath``; it is sandboxed; undefined names fail
unless the DAG sets ``template_undefined``; ``render_template_as_native_obj`` turns a
rendered ``"{{ [1, 2] }}"`` into the list rather than its text, as in Airflow.

Strings that hold no Jinja markup are returned as they are without compiling anything,
so a task with plain arguments pays almost nothing; compiled templates are cached per
environment, so a task that runs ten thousand times compiles its templates once.
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2.nativetypes import NativeCodeGenerator, NativeTemplate
from jinja2.sandbox import SandboxedEnvironment, is_internal_attribute

from millstream.errors import TemplateError

if TYPE_CHECKING:
    from millstream.sdk.dag import DAG

_MARKERS = ("{{", "{%", "{#")


# -- filters and macros (Airflow's names and outputs) -------------------------------------


def _ds(value: datetime | date | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%d")


def _ds_nodash(value: datetime | date | None) -> str | None:
    return None if value is None else value.strftime("%Y%m%d")


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _ts_nodash(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y%m%dT%H%M%S")


def _ts_nodash_with_tz(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("-", "").replace(":", "")


FILTERS: dict[str, Callable[..., Any]] = {
    "ds": _ds,
    "ds_nodash": _ds_nodash,
    "ts": _ts,
    "ts_nodash": _ts_nodash,
    "ts_nodash_with_tz": _ts_nodash_with_tz,
}


def ds_add(ds: str, days: int) -> str:
    """``ds_add('2024-01-02', 5)`` is ``'2024-01-07'``; negative days go back."""
    if not days:
        return str(ds)
    return (datetime.strptime(str(ds), "%Y-%m-%d") + timedelta(days=days)).strftime("%Y-%m-%d")


def ds_format(ds: str, input_format: str, output_format: str) -> str:
    """``ds_format('2024-01-02', '%Y-%m-%d', '%d/%m/%Y')`` is ``'02/01/2024'``."""
    return datetime.strptime(str(ds), input_format).strftime(output_format)


def datetime_diff_for_humans(dt: datetime, since: datetime | None = None) -> str:
    """How far apart two datetimes are, in words ("3 hours ago", "in 2 days")."""
    other = since or datetime.now(dt.tzinfo)
    seconds = (dt - other).total_seconds()
    amount = abs(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if amount >= size or unit == "second":
            n = int(amount // size)
            words = f"{n} {unit}{'' if n == 1 else 's'}"
            return f"in {words}" if seconds > 0 else f"{words} ago"
    return "now"  # pragma: no cover - the loop always returns


#: ``{{ macros.x }}``: the modules and helpers Airflow puts there.
MACROS = SimpleNamespace(
    ds_add=ds_add,
    ds_format=ds_format,
    datetime_diff_for_humans=datetime_diff_for_humans,
    datetime=datetime,
    timedelta=timedelta,
    json=json,
    time=time,
    uuid=uuid,
    random=random,
)


# -- environments -----------------------------------------------------------------------


class _Sandbox(SandboxedEnvironment):
    """Airflow's sandbox: attributes starting with one underscore are readable
    (operators keep their state in them), dunder attributes are not."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return not is_internal_attribute(obj, attr)


class _NativeSandbox(_Sandbox):
    """The same sandbox, rendering to Python objects (``render_template_as_native_obj``)."""

    code_generator_class = NativeCodeGenerator
    template_class = NativeTemplate


def template_searchpath(dag: DAG) -> list[str]:
    folder = os.path.dirname(os.path.abspath(dag.filename)) if dag.filename else os.getcwd()
    extra = dag.template_searchpath
    paths = [extra] if isinstance(extra, str) else list(extra or ())
    return [folder, *paths]


def environment(dag: DAG, native: bool | None = None) -> jinja2.Environment:
    """The DAG's Jinja environment (native or not), built once and kept on the DAG."""
    if native is None:
        native = dag.render_template_as_native_obj
    envs: dict[bool, jinja2.Environment] = dag.__dict__.setdefault("_jinja_envs", {})
    env = envs.get(native)
    if env is None:
        cls = _NativeSandbox if native else _Sandbox
        options: dict[str, Any] = {
            "loader": jinja2.FileSystemLoader(template_searchpath(dag)),
            "undefined": dag.template_undefined or jinja2.StrictUndefined,
            "extensions": ["jinja2.ext.do"],
            "cache_size": 4000,
            **dag.jinja_environment_kwargs,
        }
        try:
            env = cls(**options)
        except TypeError as e:
            raise TemplateError(
                f"DAG {dag.dag_id!r}: jinja_environment_kwargs has an option Jinja does not know: {e}"
            ) from None
        env.filters.update(FILTERS)
        env.filters.update(dag.user_defined_filters)
        env.globals.update(dag.user_defined_macros)
        env.globals["macros"] = MACROS
        env.compiled_strings = {}  # type: ignore[attr-defined]
        envs[native] = env
    return env


# -- rendering ------------------------------------------------------------------------------


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


class Renderer:
    """Renders values of one task's fields for one attempt.

    ``resolve`` turns references to other tasks' results (XComArgs and the like) into
    their values; those values are not rendered again, as in Airflow, so a result that
    happens to contain ``{{`` reaches the task untouched.
    """

    def __init__(
        self,
        dag: DAG,
        context: Mapping[str, Any],
        *,
        resolvable: tuple[type, ...] = (),
        resolve: Callable[[Any], Any] | None = None,
        where: str = "",
        native: bool | None = None,
    ) -> None:
        self.env = environment(dag, native)
        self.native = isinstance(self.env, _NativeSandbox)
        self.strings: dict[str, jinja2.Template] = self.env.compiled_strings  # type: ignore[attr-defined]
        self.context = context
        self.resolvable = resolvable
        self.resolve = resolve
        self.where = where
        self.field = ""
        self.templates_rendered = 0  # Jinja templates actually rendered (not plain strings)

    def render_fields(self, obj: Any, fields: Iterable[str], exts: tuple[str, ...]) -> None:
        """Render ``obj``'s template fields in place (``obj`` is the attempt's own copy)."""
        for name in fields:
            self.field = name
            value = getattr(obj, name)
            if value is not None:
                setattr(obj, name, self.render(value, exts, set()))

    def render(self, value: Any, exts: tuple[str, ...] = (), seen: set[int] | None = None) -> Any:
        if isinstance(value, str):
            return self._string(value, exts)
        if self.resolvable and isinstance(value, self.resolvable):
            assert self.resolve is not None
            return self.resolve(value)
        seen = set() if seen is None else seen
        if isinstance(value, tuple):
            items = [self.render(v, exts, seen) for v in value]
            return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
        if isinstance(value, list):
            return [self.render(v, exts, seen) for v in value]
        if isinstance(value, dict):
            return {k: self.render(v, exts, seen) for k, v in value.items()}
        if isinstance(value, set):
            return {self.render(v, exts, seen) for v in value}
        nested = getattr(type(value), "template_fields", None)
        if nested and not isinstance(value, type) and id(value) not in seen:
            seen.add(id(value))
            clone = copy.copy(value)
            outer = self.field
            for name in nested:
                self.field = f"{outer}.{name}"
                inner = getattr(clone, name, None)
                if inner is not None:
                    setattr(clone, name, self.render(inner, tuple(getattr(value, "template_ext", ())), seen))
            self.field = outer
            return clone
        return value

    def _string(self, text: str, exts: tuple[str, ...]) -> Any:
        if exts and text.endswith(exts):
            try:
                template = self.env.get_template(text)
            except jinja2.TemplateNotFound:
                raise TemplateError(
                    f"{self.where}: template field {self.field!r} names the template file {text!r}, "
                    f"which is not in {', '.join(self._searchpath())}; put it there or add its folder to "
                    "the DAG's template_searchpath"
                ) from None
            except jinja2.TemplateSyntaxError as e:
                raise self._error(e, f"file {text}, line {e.lineno}") from None
            return self._run(template, text)
        if not self.native and not any(m in text for m in _MARKERS):
            return text
        cached = self.strings.get(text)
        if cached is not None:
            template = cached
        else:
            try:
                template = self.env.from_string(text)
            except jinja2.TemplateSyntaxError as e:
                raise self._error(e, _short(text)) from None
            if len(self.strings) >= 4096:  # strings built at run time must not pile up
                self.strings.clear()
            self.strings[text] = template
        return self._run(template, text)

    def _run(self, template: jinja2.Template, text: str) -> Any:
        self.templates_rendered += 1
        try:
            return template.render(self.context)
        except TemplateError:
            raise
        except Exception as e:
            raise self._error(e, _short(text)) from e

    def _searchpath(self) -> list[str]:
        loader = self.env.loader
        return list(getattr(loader, "searchpath", []))

    def _error(self, e: Exception, template: str) -> TemplateError:
        kind = "syntax error" if isinstance(e, jinja2.TemplateSyntaxError) else "error"
        return TemplateError(
            f"{self.where}: cannot render template field {self.field!r}: {kind}: {e}; template: {template}"
        )
