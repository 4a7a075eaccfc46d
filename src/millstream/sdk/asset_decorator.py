"""``@asset``: a one-task DAG that materializes the asset named after the function."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from millstream.errors import DagDefinitionError
from millstream.sdk._location import caller_location
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
        bad = [p for p in params if p not in _ALLOWED_PARAMS]
        if bad:
            filename, lineno = caller_location()
            raise DagDefinitionError(
                f"@asset {self.name!r}: parameters {bad} are not understood; an @asset function "
                "may take `self` (this asset) and `context` (the task context)",
                filename=filename,
                lineno=lineno,
            )
        from millstream.sdk.dag import DAG
        from millstream.sdk.task import task

        me = self

        @functools.wraps(fn)
        def materialize(**context: Any) -> Any:
            kwargs: dict[str, Any] = {}
            if "self" in params:
                kwargs["self"] = me
            if "context" in params:
                kwargs["context"] = context
            return fn(**kwargs)

        del materialize.__wrapped__  # the worker must see **context, not fn's signature
        with DAG(self.name, schedule=schedule, **dag_kwargs) as dag:
            task(materialize, task_id=self.name, outlets=[self])()
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
