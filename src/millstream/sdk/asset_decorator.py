"""``@asset``: a one-task DAG that materializes the asset named after the function."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from millstream.sdk.assets import Asset, FileArrivalWatcher

_ALLOWED_PARAMS = ("self", "context")


class AssetDefinition(Asset):
    """The asset an ``@asset`` function materializes; also usable in other DAGs'
    schedules (``schedule=raw_orders``). Its DAG and task are both named after it."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        schedule: Any,
        name: str | None,
        uri: str | None,
        group: str | None,
        extra: Mapping[str, Any] | None,
        watchers: Sequence[FileArrivalWatcher],
        dag_kwargs: Mapping[str, Any],
    ) -> None:
        super().__init__(name or fn.__name__, uri, group, extra, watchers=watchers)
        params = inspect.signature(fn).parameters
        # As in Airflow: any other parameter without a default names an upstream asset,
        # which becomes an inlet and is passed in (read its events with inlet_events).
        inlets = {
            p: Asset(p)
            for p, v in params.items()
            if p not in _ALLOWED_PARAMS
            and v.default is inspect.Parameter.empty
            and v.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        }
        from millstream.sdk.dag import DAG
        from millstream.sdk.decorators import task

        me = self

        @functools.wraps(fn)
        def materialize(**context: Any) -> Any:
            kwargs: dict[str, Any] = {}
            if "self" in params:
                kwargs["self"] = me
            if "context" in params:
                kwargs["context"] = context
            kwargs.update(inlets)
            return fn(**kwargs)

        del materialize.__wrapped__  # the worker must see **context, not fn's signature
        with DAG(self.name, schedule=schedule, **dag_kwargs) as dag:
            task(materialize, task_id=self.name, outlets=[self], inlets=list(inlets.values()))()
        self.dag = dag
        self.python_callable = fn


def asset(
    *,
    schedule: Any,
    name: str | None = None,
    uri: str | None = None,
    group: str | None = None,
    extra: Mapping[str, Any] | None = None,
    watchers: Sequence[FileArrivalWatcher] = (),
    **dag_kwargs: Any,
) -> Callable[[Callable[..., Any]], AssetDefinition]:
    """Declare an asset and the DAG that materializes it (other ``@dag`` arguments such
    as ``start_date`` or ``tags`` pass through)."""

    def wrap(fn: Callable[..., Any]) -> AssetDefinition:
        return AssetDefinition(
            fn,
            schedule=schedule,
            name=name,
            uri=uri,
            group=group,
            extra=extra,
            watchers=watchers,
            dag_kwargs=dag_kwargs,
        )

    return wrap
