"""Airflow's http provider operators: ``HttpOperator`` calls an endpoint, ``HttpSensor``
waits until one answers. Both run on :class:`~millstream.sdk.hooks.http.HttpHook`
(httpx), and both take ``deferrable=True``: the request (or the polling) then runs in a
trigger on the triggerer with ``httpx.AsyncClient``, and the worker slot is given back.

A deferred request's response crosses to the resumed task as JSON (status, headers,
base64 body, URL) and comes back as an :class:`~millstream.sdk.hooks.http.HttpResponse`,
so ``response_check``, ``response_filter`` and ``pagination_function`` see the same kind
of object in both modes.
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, NoReturn

import httpx

from millstream.errors import MillstreamError
from millstream.sdk import execution
from millstream.sdk.baseoperator import BaseOperator, BaseSensorOperator
from millstream.sdk.connection import Connection
from millstream.sdk.deferral import BaseTrigger, TriggerEvent
from millstream.sdk.hooks.http import SIMPLE_RETRY_KEYS, HttpErrorException, HttpHook, HttpResponse
from millstream.sdk.xcom import PokeReturnValue

#: Idempotent methods (RFC 9110 9.2.2): a triggerer restart may send a deferred request twice.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
#: Headers that describe the bytes on the wire, not the decoded body a response keeps.
_WIRE_HEADERS = ("content-encoding", "transfer-encoding", "content-length")


# -- responses across a deferral ----------------------------------------------------------------


def serialize_response(response: httpx.Response) -> dict[str, Any]:
    """A response as JSON-safe data (the body base64), for a trigger event or resume kwargs."""
    return {
        "status_code": response.status_code,
        "headers": list(response.headers.multi_items()),
        "content": base64.standard_b64encode(response.content).decode("ascii"),
        "url": str(response.url),
        "method": response.request.method,
        "history": [serialize_response(h) for h in response.history],
    }


def deserialize_response(data: Mapping[str, Any]) -> HttpResponse:
    """The :class:`HttpResponse` that :func:`serialize_response` described."""
    headers = [(k, v) for k, v in data["headers"] if k.lower() not in _WIRE_HEADERS]
    response = HttpResponse(
        data["status_code"],
        headers=headers,
        content=base64.standard_b64decode(data["content"]),
        request=httpx.Request(data.get("method", "GET"), data["url"]),
        history=[deserialize_response(h) for h in data.get("history", [])],
    )
    response.read()
    return response


def serialize_auth_type(auth: Any) -> str | None:
    """An auth class as ``module.QualName`` (a trigger's arguments must be JSON)."""
    if auth is None or isinstance(auth, str):
        return auth
    if not isinstance(auth, type):
        raise MillstreamError(
            f"a deferrable HTTP task needs auth_type to be a class the triggerer can import, got {auth!r}"
        )
    return f"{auth.__module__}.{auth.__qualname__}"


def deserialize_auth_type(path: str | None) -> Any:
    if path is None:
        return None
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _is_simple_retry(retry_args: Mapping[str, Any] | None) -> bool:
    return not retry_args or set(retry_args) <= SIMPLE_RETRY_KEYS


def _merge(base: Mapping[str, Any] | None, top: Mapping[str, Any] | None) -> dict[str, Any]:
    """Nested dict merge, ``top`` winning (Airflow's merge_dicts)."""
    out = dict(base or {})
    for key, value in (top or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


# -- triggers -------------------------------------------------------------------------------------


class HttpTrigger(BaseTrigger):
    """Sends one request on the triggerer; the event is ``{"status": "success",
    "response": <serialized>}`` or ``{"status": "error", "message": ...}``. ``retry_args``
    takes the hook's simple form (attempts and wait) only: tenacity objects are not JSON."""

    def __init__(
        self,
        http_conn_id: str = "http_default",
        auth_type: str | None = None,
        method: str = "POST",
        endpoint: str | None = None,
        headers: dict[str, str] | None = None,
        data: dict[str, Any] | str | None = None,
        extra_options: dict[str, Any] | None = None,
        request_kwargs: dict[str, Any] | None = None,
        retry_args: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not _is_simple_retry(retry_args):
            raise MillstreamError(
                "HttpTrigger: retry_args must be the simple form {'stop_after_attempt': n, 'wait': seconds}; "
                "tenacity objects cannot be sent to the triggerer"
            )
        self.http_conn_id = http_conn_id
        self.auth_type = auth_type
        self.method = method
        self.endpoint = endpoint
        self.headers = headers
        self.data = data
        self.extra_options = extra_options
        self.request_kwargs = request_kwargs
        self.retry_args = retry_args

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "millstream.sdk.standard.http.HttpTrigger",
            {
                "http_conn_id": self.http_conn_id,
                "auth_type": self.auth_type,
                "method": self.method,
                "endpoint": self.endpoint,
                "headers": self.headers,
                "data": self.data,
                "extra_options": self.extra_options,
                "request_kwargs": self.request_kwargs,
                "retry_args": self.retry_args,
            },
        )

    def _hook(self) -> HttpHook:
        return HttpHook(
            method=self.method,
            http_conn_id=self.http_conn_id,
            auth_type=deserialize_auth_type(self.auth_type),
        )

    async def _request(self, hook: HttpHook) -> HttpResponse:
        return await hook.arun(
            self.endpoint, self.data, self.headers, self.extra_options, **(self.request_kwargs or {})
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import asyncio

        hook = self._hook()
        attempts = int((self.retry_args or {}).get("stop_after_attempt", 1))
        wait = float((self.retry_args or {}).get("wait", 1.0))
        for attempt in range(1, attempts + 1):
            try:
                response = await self._request(hook)
            except (httpx.TransportError, HttpErrorException) as e:
                retryable = isinstance(e, httpx.TransportError) or e.status_code >= 500
                if retryable and attempt < attempts:
                    await asyncio.sleep(wait)
                    continue
                yield TriggerEvent({"status": "error", "message": f"{type(e).__name__}: {e}"})
                return
            except Exception as e:  # noqa: BLE001 - the task reports it when it resumes
                yield TriggerEvent({"status": "error", "message": f"{type(e).__name__}: {e}"})
                return
            yield TriggerEvent({"status": "success", "response": serialize_response(response)})
            return


class HttpSensorTrigger(HttpTrigger):
    """Polls every ``poke_interval`` seconds while the answer's status is allow-listed
    (``404`` by default, as the sensor); then fires with the response, or with an error
    for any other failure (the sensor fails on those in poke mode too). ``wait_first``
    sleeps before the first request, for a sensor that has just poked."""

    def __init__(
        self,
        endpoint: str | None = None,
        http_conn_id: str = "http_default",
        method: str = "GET",
        data: dict[str, Any] | str | None = None,
        headers: dict[str, str] | None = None,
        extra_options: dict[str, Any] | None = None,
        poke_interval: float = 5.0,
        response_error_codes_allowlist: Sequence[str] = ("404",),
        request_kwargs: dict[str, Any] | None = None,
        wait_first: bool = False,
    ) -> None:
        super().__init__(
            http_conn_id=http_conn_id,
            method=method,
            endpoint=endpoint,
            headers=headers,
            data=data,
            extra_options=extra_options or {},
            request_kwargs=request_kwargs,
        )
        self.poke_interval = poke_interval
        self.response_error_codes_allowlist = [str(c) for c in response_error_codes_allowlist]
        self.wait_first = wait_first

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "millstream.sdk.standard.http.HttpSensorTrigger",
            {
                "endpoint": self.endpoint,
                "http_conn_id": self.http_conn_id,
                "method": self.method,
                "data": self.data,
                "headers": self.headers,
                "extra_options": self.extra_options,
                "poke_interval": self.poke_interval,
                "response_error_codes_allowlist": self.response_error_codes_allowlist,
                "request_kwargs": self.request_kwargs,
                "wait_first": self.wait_first,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import asyncio

        hook = self._hook()
        if self.wait_first:
            await asyncio.sleep(self.poke_interval)
        while True:
            try:
                response = await self._request(hook)
            except HttpErrorException as e:
                if str(e).startswith(tuple(self.response_error_codes_allowlist)):
                    await asyncio.sleep(self.poke_interval)
                    continue
                yield TriggerEvent({"status": "error", "message": str(e)})
                return
            except Exception as e:  # noqa: BLE001 - the task reports it when it resumes
                yield TriggerEvent({"status": "error", "message": f"{type(e).__name__}: {e}"})
                return
            yield TriggerEvent({"status": "success", "response": serialize_response(response)})
            return


# -- operator -------------------------------------------------------------------------------------


class HttpOperator(BaseOperator):
    """Calls ``endpoint`` on the ``http_conn_id`` connection; the result (XCom
    ``return_value``) is the response text, or ``response_filter(response, **context)``.

    ``data`` is the query of a GET and the body of other methods. ``response_check``
    returning falsy fails the task. ``pagination_function(response)`` returning a dict of
    ``endpoint``/``data``/``headers``/``extra_options`` calls again with those merged in,
    until it returns nothing; the checks and filter then get the list of responses, and the
    default result is the list of texts. ``retry_args`` retries through
    :meth:`HttpHook.run_with_advanced_retry`."""

    conn_id_field = "http_conn_id"
    template_fields: Sequence[str] = ("endpoint", "data", "headers", "http_conn_id")
    template_fields_renderers = {"headers": "json", "data": "py"}
    template_ext: Sequence[str] = ()
    ui_color = "#f4a460"

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        method: str = "POST",
        data: dict[str, Any] | str | None = None,
        headers: dict[str, str] | None = None,
        pagination_function: Callable[..., Any] | None = None,
        response_check: Callable[..., bool] | None = None,
        response_filter: Callable[..., Any] | None = None,
        extra_options: dict[str, Any] | None = None,
        request_kwargs: dict[str, Any] | None = None,
        http_conn_id: str = "http_default",
        log_response: bool = False,
        auth_type: Any = None,
        tcp_keep_alive: bool = True,
        tcp_keep_alive_idle: int = 120,
        tcp_keep_alive_count: int = 20,
        tcp_keep_alive_interval: int = 30,
        deferrable: bool = False,
        warn_on_non_idempotent: bool = True,
        retry_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if deferrable and not _is_simple_retry(retry_args):
            raise ValueError(
                f"HttpOperator {self.task_id!r}: deferrable=True sends the request from the triggerer, "
                "which cannot receive tenacity objects; give retry_args the simple form "
                "{'stop_after_attempt': n, 'wait': seconds} or drop deferrable"
            )
        if deferrable and auth_type is not None and not isinstance(auth_type, (type, str)):
            raise ValueError(
                f"HttpOperator {self.task_id!r}: deferrable=True needs auth_type to be an importable class"
            )
        self.http_conn_id = http_conn_id
        self.method = method
        self.endpoint = endpoint
        self.headers = headers or {}
        self.data = data or {}
        self.pagination_function = pagination_function
        self.response_check = response_check
        self.response_filter = response_filter
        self.extra_options = extra_options or {}
        self.log_response = log_response
        self.auth_type = auth_type
        self.tcp_keep_alive = tcp_keep_alive
        self.tcp_keep_alive_idle = tcp_keep_alive_idle
        self.tcp_keep_alive_count = tcp_keep_alive_count
        self.tcp_keep_alive_interval = tcp_keep_alive_interval
        self.deferrable = deferrable
        self.warn_on_non_idempotent = warn_on_non_idempotent
        self.retry_args = retry_args
        self.request_kwargs = request_kwargs or {}

    @property
    def hook(self) -> HttpHook:
        """The hook of the connection's type (an ``http``/``https`` one is HttpHook)."""
        conn = Connection.get(getattr(self, self.conn_id_field))
        params = {
            "method": self.method,
            "auth_type": self.auth_type,
            "tcp_keep_alive": self.tcp_keep_alive,
            "tcp_keep_alive_idle": self.tcp_keep_alive_idle,
            "tcp_keep_alive_count": self.tcp_keep_alive_count,
            "tcp_keep_alive_interval": self.tcp_keep_alive_interval,
        }
        if not conn.conn_type:  # a JSON connection may leave its type out
            return HttpHook.from_connection(conn, **params)
        hook: HttpHook = conn.get_hook(hook_params=params)
        return hook

    def execute(self, context: Mapping[str, Any]) -> Any:
        if self.deferrable:
            self._warn_if_not_idempotent()
            self._defer_request(self._first_request(), [])
        return self.execute_sync(context)

    def _first_request(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "data": self.data,
            "headers": self.headers,
            "extra_options": self.extra_options,
        }

    def _call(self, hook: HttpHook, request: Mapping[str, Any]) -> HttpResponse:
        kwargs = {**request, **self.request_kwargs}
        if self.retry_args:
            response: HttpResponse = hook.run_with_advanced_retry(self.retry_args, **kwargs)
            return response
        return hook.run(**kwargs)

    def execute_sync(self, context: Mapping[str, Any]) -> Any:
        self.log.info("Calling HTTP method %s", self.method)
        hook = self.hook
        response = self._call(hook, self._first_request())
        return self.process_response(context, self.paginate_sync(response, hook))

    def paginate_sync(self, response: HttpResponse, hook: HttpHook | None = None) -> Any:
        if not self.pagination_function:
            return response
        hook = hook or self.hook
        responses = [response]
        while next_page := self.pagination_function(response):
            response = self._call(hook, self._merge_next_page_parameters(next_page))
            responses.append(response)
        return responses

    def _merge_next_page_parameters(self, next_page_params: Mapping[str, Any]) -> dict[str, Any]:
        """The next request: the function's values over the operator's, dicts merged."""
        page_data = next_page_params.get("data")
        if isinstance(self.data, Mapping) and isinstance(page_data, Mapping):
            data: Any = _merge(self.data, page_data)
        else:
            data = page_data or self.data
        return {
            "endpoint": next_page_params.get("endpoint") or self.endpoint,
            "data": data,
            "headers": _merge(self.headers, next_page_params.get("headers")),
            "extra_options": _merge(self.extra_options, next_page_params.get("extra_options")),
        }

    def process_response(self, context: Mapping[str, Any], response: Any) -> Any:
        """Log, check and filter the response (or list of them, when paginated)."""
        responses = response if isinstance(response, list) else None
        text: Any = [r.text for r in responses] if responses is not None else response.text
        if self.log_response:
            self.log.info("%s", text)
        if self.response_check:
            args, kwargs = execution.call_arguments(self.response_check, [response], {}, context)
            if not self.response_check(*args, **kwargs):
                raise MillstreamError(f"HttpOperator {self.task_id!r}: Response check returned False.")
        if self.response_filter:
            args, kwargs = execution.call_arguments(self.response_filter, [response], {}, context)
            return self.response_filter(*args, **kwargs)
        return text

    # -- deferrable -------------------------------------------------------------------------------

    def _warn_if_not_idempotent(self) -> None:
        if self.warn_on_non_idempotent and self.method.upper() not in IDEMPOTENT_METHODS:
            self.log.warning(
                "HttpOperator with deferrable=True and method=%s may send the request twice if the "
                "triggerer restarts; use an idempotent method, or set warn_on_non_idempotent=False",
                self.method,
            )

    def _defer_request(self, request: Mapping[str, Any], previous: list[dict[str, Any]]) -> NoReturn:
        self.defer(
            trigger=HttpTrigger(
                http_conn_id=self.http_conn_id,
                auth_type=serialize_auth_type(self.auth_type),  # None: basic auth if the conn has a login
                method=self.method,
                request_kwargs=self.request_kwargs or None,
                retry_args=self.retry_args,
                **request,
            ),
            method_name="execute_complete",
            kwargs={"paginated_responses": previous} if previous else None,
        )

    def execute_complete(
        self,
        context: Mapping[str, Any],
        event: Mapping[str, Any] | None = None,
        paginated_responses: list[dict[str, Any]] | None = None,
    ) -> Any:
        """Resume after the trigger: fail on its error, else paginate (deferring again for
        each page, the earlier pages carried serialized) and process as in sync mode."""
        if not event or event.get("status") != "success":
            message = event.get("message") if event else "no event"
            raise MillstreamError(f"HttpOperator {self.task_id!r}: the request failed: {message}")
        response = deserialize_response(event["response"])
        if not self.pagination_function:
            return self.process_response(context, response)
        previous = [*(paginated_responses or []), event["response"]]
        next_page = self.pagination_function(response)
        if next_page:
            self._defer_request(self._merge_next_page_parameters(next_page), previous)
        return self.process_response(context, [deserialize_response(r) for r in previous])


# -- sensor ---------------------------------------------------------------------------------------


class HttpSensor(BaseSensorOperator):
    """Waits until ``endpoint`` answers: a status in ``response_error_codes_allowlist``
    (``["404"]`` by default; ``[]`` for none) means "not yet", any other 4xx/5xx or a
    transport error fails the task, and a success is done unless ``response_check``
    (called with the response and the context values it names) says otherwise.
    ``extra_options={"check_response": False}`` hands every status to ``response_check``.

    With ``deferrable=True`` the polling runs in :class:`HttpSensorTrigger`; a
    ``response_check`` then runs on the worker after each answer the trigger fires on,
    deferring again while it returns falsy (Airflow pokes on the worker instead)."""

    template_fields: Sequence[str] = ("endpoint", "request_params", "headers", "http_conn_id")

    def __init__(
        self,
        *,
        endpoint: str,
        http_conn_id: str = "http_default",
        method: str = "GET",
        request_params: dict[str, Any] | None = None,
        request_kwargs: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        response_error_codes_allowlist: list[str] | None = None,
        response_check: Callable[..., bool | PokeReturnValue] | None = None,
        extra_options: dict[str, Any] | None = None,
        tcp_keep_alive: bool = True,
        tcp_keep_alive_idle: int = 120,
        tcp_keep_alive_count: int = 20,
        tcp_keep_alive_interval: int = 30,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.http_conn_id = http_conn_id
        self.method = method
        self.response_error_codes_allowlist = (
            ("404",)
            if response_error_codes_allowlist is None
            else tuple(str(c) for c in response_error_codes_allowlist)
        )
        self.request_params = request_params or {}
        self.headers = headers or {}
        self.extra_options = extra_options or {}
        self.response_check = response_check
        self.tcp_keep_alive = tcp_keep_alive
        self.tcp_keep_alive_idle = tcp_keep_alive_idle
        self.tcp_keep_alive_count = tcp_keep_alive_count
        self.tcp_keep_alive_interval = tcp_keep_alive_interval
        self.deferrable = deferrable
        self.request_kwargs = request_kwargs or {}

    def _check(self, response: HttpResponse, context: Mapping[str, Any]) -> bool | PokeReturnValue:
        if not self.response_check:
            return True
        args, kwargs = execution.call_arguments(self.response_check, [response], {}, context)
        return self.response_check(*args, **kwargs)

    def poke(self, context: Mapping[str, Any]) -> bool | PokeReturnValue:
        hook = HttpHook(
            method=self.method,
            http_conn_id=self.http_conn_id,
            tcp_keep_alive=self.tcp_keep_alive,
            tcp_keep_alive_idle=self.tcp_keep_alive_idle,
            tcp_keep_alive_count=self.tcp_keep_alive_count,
            tcp_keep_alive_interval=self.tcp_keep_alive_interval,
        )
        self.log.info("Poking: %s", self.endpoint)
        try:
            response = hook.run(
                self.endpoint,
                data=self.request_params,
                headers=self.headers,
                extra_options=self.extra_options,
                **self.request_kwargs,
            )
        except HttpErrorException as e:
            if str(e).startswith(self.response_error_codes_allowlist):
                self.log.info("Not yet: %s", str(e).split(" - ", 1)[0])
                return False
            raise
        return self._check(response, context)

    def execute(self, context: Mapping[str, Any]) -> Any:
        if not self.deferrable:
            return super().execute(context)
        result = self.poke(context)
        if result:
            return result.xcom_value if isinstance(result, PokeReturnValue) else None
        self._defer_wait(dt.datetime.now(dt.UTC))

    def _defer_wait(self, started_at: dt.datetime) -> NoReturn:
        left = self.timeout - (dt.datetime.now(dt.UTC) - started_at).total_seconds()
        if left <= 0:
            raise execution.SensorTimeout(
                f"sensor {self.task_id!r} not satisfied after {self.timeout:g}s (timeout {self.timeout:g}s)"
            )
        self.defer(
            trigger=HttpSensorTrigger(
                endpoint=self.endpoint,
                http_conn_id=self.http_conn_id,
                method=self.method,
                data=self.request_params,
                headers=self.headers,
                extra_options=self.extra_options,
                poke_interval=self.poke_interval,
                response_error_codes_allowlist=list(self.response_error_codes_allowlist),
                request_kwargs=self.request_kwargs or None,
                wait_first=True,
            ),
            method_name="execute_complete",
            kwargs={"started_at": started_at},
            timeout=dt.timedelta(seconds=left),
        )

    def execute_complete(
        self,
        context: Mapping[str, Any],
        event: Mapping[str, Any] | None = None,
        started_at: dt.datetime | None = None,
    ) -> Any:
        """Resume after the trigger fired: fail on its error; run ``response_check`` on the
        answer and wait again (within the sensor's timeout) while it is falsy."""
        if not event or event.get("status") != "success":
            message = event.get("message") if event else "no event"
            raise MillstreamError(f"HttpSensor {self.task_id!r}: {message}")
        result = self._check(deserialize_response(event["response"]), context)
        if result:
            self.log.info("%s completed successfully.", self.task_id)
            return result.xcom_value if isinstance(result, PokeReturnValue) else None
        self._defer_wait(started_at or dt.datetime.now(dt.UTC))
