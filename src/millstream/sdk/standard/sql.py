"""Airflow's ``common.sql`` operators and sensor: run SQL on a connection
(:class:`SQLExecuteQueryOperator`), fail a task on a query's result
(:class:`SQLCheckOperator`, :class:`SQLValueCheckOperator`) and wait for one
(:class:`SqlSensor`). Each finds its hook through the connection's type, so one DAG
works against PostgreSQL, MySQL/MariaDB or SQLite by changing the connection.

Arguments, template fields and results are Airflow's. The one difference is in what a
task returns: rows become lists and database values that JSON cannot hold (``Decimal``,
``UUID``, ``time``, ``timedelta``, ``bytes``) become numbers or text, because Millstream
stores results as JSON where Airflow's serde keeps Python types.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from operator import itemgetter
from typing import Any, NoReturn

from millstream.errors import FailTask, MillstreamError
from millstream.sdk.baseoperator import BaseOperator, BaseSensorOperator
from millstream.sdk.hooks.base import BaseHook
from millstream.sdk.hooks.sql import DbApiHook, fetch_all_handler, return_single_query_results

Descriptions = list[Sequence[Sequence[Any]] | None]
OutputProcessor = Callable[[list[Any], Descriptions], Any]


def default_output_processor(results: list[Any], descriptions: Descriptions) -> list[Any]:
    """Airflow's default: the results as they came."""
    return results


def jsonable(value: Any) -> Any:
    """``value`` with rows as lists and database types JSON has no form for turned into
    numbers or text (whole ``Decimal`` -> int, else float), so it can be stored as a result."""
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    return value


def _get_db_hook(
    task_id: str, operator: str, conn_id: str | None, hook_params: Mapping[str, Any]
) -> DbApiHook:
    if not conn_id:
        raise MillstreamError(
            f"task {task_id!r}: {operator} needs conn_id= naming a postgres, mysql, mariadb or sqlite connection"
        )
    hook = BaseHook.get_connection(conn_id).get_hook(hook_params=hook_params)
    if not isinstance(hook, DbApiHook):
        raise MillstreamError(
            f"The connection type is not supported by {operator}. The associated hook should be a subclass "
            f"of `DbApiHook`. Got {type(hook).__name__} (connection {conn_id!r}); use a postgres, mysql, "
            "mariadb or sqlite connection"
        )
    return hook


class BaseSQLOperator(BaseOperator):
    """What every SQL operator shares: the connection (``conn_id``), a ``database`` that
    replaces the connection's schema, ``hook_params`` for the hook, and whether a failed
    check may be retried (``retry_on_failure``)."""

    conn_id_field = "conn_id"
    template_fields: Sequence[str] = ("conn_id", "database", "hook_params")
    _hook: DbApiHook | None = None

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        database: str | None = None,
        hook_params: Mapping[str, Any] | None = None,
        retry_on_failure: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.database = database
        self.hook_params = dict(hook_params or {})
        self.retry_on_failure = retry_on_failure

    def get_db_hook(self) -> DbApiHook:
        """The hook for ``conn_id`` (made once per attempt, after templates are rendered)."""
        if self._hook is None:
            conn_id = getattr(self, self.conn_id_field)
            hook = _get_db_hook(self.task_id, type(self).__name__, conn_id, self.hook_params)
            if self.database:
                hook.database = self.database
                hook.schema = self.database
            self._hook = hook
        return self._hook

    def _raise_exception(self, message: str) -> NoReturn:
        """Fail the task: retried if it has retries left, unless ``retry_on_failure=False``."""
        if self.retry_on_failure:
            raise MillstreamError(message)
        raise FailTask(message)


class SQLExecuteQueryOperator(BaseSQLOperator):
    """Runs ``sql`` (a statement, a list of them, or a ``.sql`` template file) on
    ``conn_id`` and returns what ``handler`` makes of the result: by default every row of
    the last statement, or a list per statement when ``sql`` is a list or is split with
    ``return_last=False``. ``output_processor(results, descriptions)`` may reshape the
    results first."""

    template_fields: Sequence[str] = ("sql", "parameters", *BaseSQLOperator.template_fields)
    template_ext: Sequence[str] = (".sql", ".json")
    template_fields_renderers = {"sql": "sql", "parameters": "json"}
    ui_color = "#cdaaed"

    def __init__(
        self,
        *,
        sql: str | list[str],
        autocommit: bool = False,
        parameters: Mapping[str, Any] | Iterable[Any] | None = None,
        handler: Callable[[Any], Any] = fetch_all_handler,
        output_processor: OutputProcessor | None = None,
        conn_id: str | None = None,
        database: str | None = None,
        split_statements: bool | None = None,
        return_last: bool = True,
        show_return_value_in_logs: bool = False,
        requires_result_fetch: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            conn_id=conn_id, database=database, show_return_value_in_logs=show_return_value_in_logs, **kwargs
        )
        self.sql = sql
        self.autocommit = autocommit
        self.parameters = parameters
        self.handler = handler
        self.output_processor: OutputProcessor = output_processor or default_output_processor
        self.split_statements = split_statements
        self.return_last = return_last
        self.show_return_value_in_logs = show_return_value_in_logs
        self.requires_result_fetch = requires_result_fetch

    def _process_output(self, results: list[Any], descriptions: Descriptions) -> Any:
        """Always a list of results (one per statement) in, what the processor makes out."""
        return self.output_processor(results, descriptions)

    def execute(self, context: Mapping[str, Any]) -> Any:
        self.log.info("Executing: %s", self.sql)
        hook = self.get_db_hook()
        extra: dict[str, Any] = {}
        if self.split_statements is not None:
            extra["split_statements"] = self.split_statements
        push = bool(self.config.get("do_xcom_push", True))
        output = hook.run(
            sql=self.sql,
            autocommit=self.autocommit,
            parameters=self.parameters,
            handler=self.handler if push or self.requires_result_fetch else None,
            return_last=self.return_last,
            **extra,
        )
        if not push:
            return None
        if return_single_query_results(self.sql, self.return_last, self.split_statements):
            return jsonable(self._process_output([output], hook.descriptions)[-1])
        return jsonable(self._process_output(list(output or []), hook.descriptions))


class SQLCheckOperator(BaseSQLOperator):
    """Fails unless the first row of ``sql`` exists and every value in it is truthy
    (``0``, ``''``, ``NULL`` and ``false`` fail), as Airflow's check does."""

    template_fields: Sequence[str] = ("sql", *BaseSQLOperator.template_fields)
    template_ext: Sequence[str] = (".hql", ".sql")
    template_fields_renderers = {"sql": "sql"}
    ui_color = "#fff7e6"

    def __init__(
        self,
        *,
        sql: str,
        conn_id: str | None = None,
        database: str | None = None,
        parameters: Mapping[str, Any] | Iterable[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, database=database, **kwargs)
        self.sql = sql
        self.parameters = parameters

    def execute(self, context: Mapping[str, Any]) -> None:
        self.log.info("Executing SQL check: %s", self.sql)
        records = self.get_db_hook().get_first(self.sql, self.parameters)
        self.log.info("Record: %s", records)
        if not records:
            self._raise_exception(f"The following query returned zero rows: {self.sql}")
        elif not all(records):
            self._raise_exception(f"Test failed.\nQuery:\n{self.sql}\nResults:\n{records!s}")
        self.log.info("Success.")


def _convert_to_float_if_possible(s: Any) -> Any:
    try:
        return float(s)
    except (ValueError, TypeError):
        return s


class SQLValueCheckOperator(BaseSQLOperator):
    """Fails unless every value in the first row of ``sql`` equals ``pass_value``: as
    numbers when ``pass_value`` reads as one (within ``tolerance``, a fraction: 0.1 is
    ±10%), else as text."""

    template_fields: Sequence[str] = ("sql", "pass_value", *BaseSQLOperator.template_fields)
    template_ext: Sequence[str] = (".hql", ".sql")
    template_fields_renderers = {"sql": "sql"}
    ui_color = "#fff7e6"

    def __init__(
        self,
        *,
        sql: str,
        pass_value: Any,
        tolerance: Any = None,
        conn_id: str | None = None,
        database: str | None = None,
        parameters: Mapping[str, Any] | Iterable[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, database=database, **kwargs)
        self.sql = sql
        self.pass_value = str(pass_value)
        self.parameters = parameters
        tol = _convert_to_float_if_possible(tolerance)
        self.tol: float | None = tol if isinstance(tol, float) else None
        self.has_tolerance = self.tol is not None

    def check_value(self, records: Any) -> None:
        if not records:
            self._raise_exception(f"The following query returned zero rows: {self.sql}")
        pass_value_conv = _convert_to_float_if_possible(self.pass_value)
        is_numeric = isinstance(pass_value_conv, float)
        tolerance = f"{self.tol:.1%}" if self.tol is not None else None
        error_msg = (
            f"Test failed.\nPass value:{pass_value_conv}\nTolerance:{tolerance}\n"
            f"Query:\n{self.sql}\nResults:\n{records!s}"
        )
        if is_numeric:
            try:
                numeric_records = [float(record) for record in records]
            except (ValueError, TypeError):
                raise MillstreamError(f"Converting a result to float failed.\n{error_msg}") from None
            tests = self._get_numeric_matches(numeric_records, pass_value_conv)
        else:
            tests = [str(record) == pass_value_conv for record in records]
        if not all(tests):
            self._raise_exception(error_msg)

    def _get_numeric_matches(self, numeric_records: list[float], pass_value: float) -> list[bool]:
        if self.tol is not None:
            return [
                pass_value * (1 - self.tol) <= record <= pass_value * (1 + self.tol)
                for record in numeric_records
            ]
        return [record == pass_value for record in numeric_records]

    def execute(self, context: Mapping[str, Any]) -> None:
        self.log.info("Executing SQL check: %s", self.sql)
        records = self.get_db_hook().get_first(self.sql, self.parameters)
        self.check_value(records)


class SqlSensor(BaseSensorOperator):
    """Pokes ``sql`` until its first row passes: ``success(value)`` when given, else the
    value's truth, where the value is ``selector(first_row)`` (the first column by
    default). ``failure(value)`` returning True fails the task; ``fail_on_empty`` fails it
    when the query returns no rows (otherwise no rows means "not yet")."""

    template_fields: Sequence[str] = ("sql", "hook_params", "parameters")
    template_ext: Sequence[str] = (".hql", ".sql")
    ui_color = "#7c7287"

    def __init__(
        self,
        *,
        conn_id: str,
        sql: str,
        parameters: Mapping[str, Any] | Iterable[Any] | None = None,
        success: Callable[[Any], bool] | None = None,
        failure: Callable[[Any], bool] | None = None,
        selector: Callable[[tuple[Any, ...]], Any] = itemgetter(0),
        fail_on_empty: bool = False,
        hook_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.sql = sql
        self.parameters = parameters
        self.success = success
        self.failure = failure
        self.selector = selector
        self.fail_on_empty = fail_on_empty
        self.hook_params = dict(hook_params or {})

    def _get_hook(self) -> DbApiHook:
        return _get_db_hook(self.task_id, type(self).__name__, self.conn_id, self.hook_params)

    def poke(self, context: Mapping[str, Any]) -> bool:
        hook = self._get_hook()
        self.log.info("Poking: %s (with parameters %s)", self.sql, self.parameters)
        records = hook.get_records(self.sql, self.parameters)
        if not records:
            if self.fail_on_empty:
                raise MillstreamError(
                    f"No rows returned, raising as per fail_on_empty flag (sensor {self.task_id!r}, query: {self.sql})"
                )
            return False
        condition = self.selector(records[0])
        if self.failure is not None:
            if not callable(self.failure):
                raise MillstreamError(f"self.failure is present, but not callable -> {self.failure}")
            if self.failure(condition):
                raise MillstreamError(f"Failure criteria met. self.failure({condition}) returned True")
        if self.success is not None:
            if not callable(self.success):
                raise MillstreamError(f"self.success is present, but not callable -> {self.success}")
            return bool(self.success(condition))
        return bool(condition)
