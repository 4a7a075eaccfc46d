"""``HttpHook``: Airflow's http-provider hook (6.x), on httpx instead of requests.

It reads a connection as Airflow does: the base URL is the host (which may carry its own
scheme), else ``schema://host`` with ``http`` as the default scheme, then ``:port``; login
and password become basic auth (``auth_type`` overrides the class). The connection extra
holds request options under Airflow's keys — ``timeout``, ``verify`` (or ``verify_ssl``),
``cert``, ``proxies`` (or ``proxy``), ``allow_redirects``, ``max_redirects``,
``trust_env``, ``stream``, ``check_response`` — and every other key is a header, as in
Airflow; Millstream also takes a ``headers`` mapping there, which is easier to write.
Values that came from a URI are text, so ``"false"`` and ``"5"`` are read as such.

What differs from requests, and why:

- Responses are :class:`HttpResponse`, an ``httpx.Response`` with requests' ``ok`` and
  ``reason`` and requests' ``raise_for_status`` (only 4xx/5xx raise), so response checks
  written for Airflow keep working. ``response.url`` is an ``httpx.URL``; ``str()`` it.
- Transport failures raise ``httpx.TransportError`` subclasses (``httpx.ConnectError``),
  not ``requests.ConnectionError``.
- ``timeout`` left unset means no timeout, as in requests (httpx would use 5 s).
- ``run_with_advanced_retry`` takes tenacity's arguments when tenacity is installed (it is
  not a Millstream dependency); the simple form ``{"stop_after_attempt": 3, "wait": 1.0}``
  works without it (see :meth:`HttpHook.run_with_advanced_retry`).
- requests ``adapter`` objects do not apply to httpx: pass ``transport=`` instead.
- DNS SRV lookup (``srv_lookup``) is refused: it needs dnspython, which Millstream lacks.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from millstream.errors import MillstreamError
from millstream.sdk.connection import Connection
from millstream.sdk.hooks.base import BaseHook

log = logging.getLogger(__name__)

#: Extra keys that are request options rather than headers (Airflow's list).
OPTION_KEYS = frozenset(
    {
        "stream",
        "cert",
        "proxies",
        "proxy",
        "timeout",
        "verify",
        "verify_ssl",
        "allow_redirects",
        "max_redirects",
        "trust_env",
        "check_response",
        "srv_lookup",
    }
)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
#: The keys of run_with_advanced_retry's simple form (no tenacity needed).
SIMPLE_RETRY_KEYS = frozenset({"stop_after_attempt", "wait"})

T = TypeVar("T")


class HttpErrorException(MillstreamError):  # noqa: N818 - Airflow's name
    """A response with a 4xx/5xx status. The message starts with ``<status>:<reason>`` as
    Airflow's does (HttpSensor's allow-list matches on that prefix), then the body's head."""

    def __init__(self, response: httpx.Response) -> None:
        body = _body_head(response)
        super().__init__(
            f"{response.status_code}:{response.reason_phrase} - {response.request.method} "
            f"{response.request.url} answered: {body}"
        )
        self.response: httpx.Response | None = response
        self.status_code = response.status_code

    def __reduce__(self) -> tuple[Any, ...]:
        # The response does not cross processes; the message and status do.
        return (_rebuilt_http_error, (str(self), self.status_code))


def _rebuilt_http_error(message: str, status_code: int) -> HttpErrorException:
    error = HttpErrorException.__new__(HttpErrorException)
    MillstreamError.__init__(error, message)
    error.response, error.status_code = None, status_code
    return error


class HttpMethodException(MillstreamError):  # noqa: N818 - Airflow's name
    """An HTTP method the hook does not know."""


def _body_head(response: httpx.Response, limit: int = 500) -> str:
    try:
        text = response.text
    except (httpx.ResponseNotRead, httpx.StreamError):
        return "<streamed body not read>"
    return text[:limit] + ("..." if len(text) > limit else "") if text else "<empty body>"


class HttpResponse(httpx.Response):
    """An ``httpx.Response`` that also speaks requests' dialect where httpx differs:
    ``ok``, ``reason``, and ``raise_for_status`` raising only on 4xx/5xx (httpx raises on
    redirects too). Airflow response checks and filters use these."""

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def reason(self) -> str:
        return self.reason_phrase

    def raise_for_status(self) -> HttpResponse:
        if self.status_code >= 400:
            super().raise_for_status()
        return self


def as_http_response(response: httpx.Response) -> HttpResponse:
    """The same response object, typed as :class:`HttpResponse`. The class is swapped in
    place (the subclass adds no state), so a streamed body stays attached."""
    if not isinstance(response, HttpResponse):
        response.__class__ = HttpResponse
    for earlier in response.history:
        as_http_response(earlier)
    return response  # type: ignore[return-value]


class HttpClient(httpx.Client):
    """``httpx.Client`` whose responses are :class:`HttpResponse` (``get_conn`` returns it)."""

    def send(self, request: httpx.Request, **kwargs: Any) -> HttpResponse:
        return as_http_response(super().send(request, **kwargs))


class AsyncHttpClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` whose responses are :class:`HttpResponse` (for triggers)."""

    async def send(self, request: httpx.Request, **kwargs: Any) -> HttpResponse:
        return as_http_response(await super().send(request, **kwargs))


def url_from_endpoint(base_url: str | None, endpoint: str | None) -> str:
    """Airflow's join: one ``/`` between base and endpoint when neither side has it."""
    if base_url and not base_url.endswith("/") and endpoint and not endpoint.startswith("/"):
        return f"{base_url}/{endpoint}"
    return (base_url or "") + (endpoint or "")


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _timeout(value: Any) -> httpx.Timeout:
    """requests' timeout: None (wait forever), seconds, or (connect, read)."""
    if value is None:
        return httpx.Timeout(None)
    if isinstance(value, (list, tuple)):
        connect, read = value
        return httpx.Timeout(None if read is None else float(read), connect=connect and float(connect))
    return httpx.Timeout(float(value))


def _ssl_context(verify: Any, cert: Any) -> ssl.SSLContext | bool:
    """requests' ``verify`` (bool or CA bundle path) and ``cert`` (path or (cert, key)) as
    the SSL context httpx wants (its own path arguments are deprecated)."""
    if isinstance(verify, str) and verify.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        verify = _flag(verify)
    if cert is None and isinstance(verify, bool):
        return verify
    if isinstance(verify, str):
        ctx = ssl.create_default_context(
            cafile=None if os.path.isdir(verify) else verify, capath=verify if os.path.isdir(verify) else None
        )
    else:
        ctx = ssl.create_default_context()
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        certfile, keyfile = (cert[0], cert[1]) if isinstance(cert, (list, tuple)) else (cert, None)
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


@dataclass
class PreparedCall:
    """One request, worked out from the connection and the call's arguments; shared by
    the sync path (``run``) and the async one (``arun``, used by triggers)."""

    method: str
    url: str
    options: dict[str, Any]
    headers: dict[str, str]
    auth: httpx.Auth | None
    request: dict[str, Any] = field(default_factory=dict)

    @property
    def check_response(self) -> bool:
        return _flag(self.options.get("check_response", True))

    @property
    def stream(self) -> bool:
        return _flag(self.options.get("stream", False))


class HttpHook(BaseHook):
    """Calls an HTTP API described by a connection (see the module docstring).

    ``tcp_keep_alive`` (on by default, as in Airflow) sets SO_KEEPALIVE and the idle,
    interval and count options on each socket, so long requests through NAT and load
    balancers are not dropped silently."""

    conn_name_attr = "http_conn_id"
    default_conn_name = "http_default"
    conn_type = "http"
    hook_name = "HTTP"
    default_host = ""
    default_headers: dict[str, str] = {}

    def __init__(
        self,
        method: str = "POST",
        http_conn_id: str = default_conn_name,
        auth_type: Any = None,
        tcp_keep_alive: bool = True,
        tcp_keep_alive_idle: int = 120,
        tcp_keep_alive_count: int = 20,
        tcp_keep_alive_interval: int = 30,
        adapter: Any = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__()
        if adapter is not None:
            raise MillstreamError(
                "HttpHook: adapter= takes a requests HTTPAdapter, and Millstream's HttpHook uses httpx; "
                "pass transport=httpx.HTTPTransport(...) instead"
            )
        self.http_conn_id = http_conn_id
        self.method = method.upper()
        if self.method not in METHODS:
            raise HttpMethodException(
                f"Unexpected HTTP Method: {method} (known: {', '.join(sorted(METHODS))})"
            )
        self._auth_type = auth_type
        self.tcp_keep_alive = tcp_keep_alive
        self.tcp_keep_alive_idle = tcp_keep_alive_idle
        self.tcp_keep_alive_count = tcp_keep_alive_count
        self.tcp_keep_alive_interval = tcp_keep_alive_interval
        self.transport = transport
        self.base_url = ""
        self.merged_extra: dict[str, Any] = {}
        self._conn: Connection | None = None

    @classmethod
    def from_connection(cls, conn: Connection, **hook_params: Any) -> HttpHook:
        """The hook for ``conn`` (what ``Connection.get_hook()`` calls); it keeps ``conn``
        rather than reading it again."""
        hook = cls(http_conn_id=conn.conn_id, **hook_params)
        hook._conn = conn
        return hook

    @property
    def auth_type(self) -> Any:
        return self._auth_type or httpx.BasicAuth

    @auth_type.setter
    def auth_type(self, value: Any) -> None:
        self._auth_type = value

    @property
    def connection(self) -> Connection:
        if self._conn is None or self._conn.conn_id != self.http_conn_id:
            self._conn = self.get_connection(self.http_conn_id)
        return self._conn

    # -- what the connection says -----------------------------------------------------------

    def _set_base_url(self, conn: Connection) -> None:
        host = conn.host or self.default_host
        scheme = conn.schema or "http"
        self.base_url = host if "://" in host else f"{scheme}://{host}"
        if conn.port:
            self.base_url = f"{self.base_url}:{conn.port}"

    def _split_extra(
        self, conn: Connection, extra_options: Mapping[str, Any] | None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """(headers, options) from the connection extra and the call's extra_options; the
        call's options win. Unknown option names are refused rather than dropped."""
        unknown = set(extra_options or {}) - OPTION_KEYS
        if unknown:
            raise MillstreamError(
                f"HttpHook ({self.http_conn_id}): unknown extra_options {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(OPTION_KEYS))}"
            )
        headers: dict[str, str] = {}
        options: dict[str, Any] = {}
        for key, value in conn.extra_dejson.items():
            if key in OPTION_KEYS:
                options[key] = value
            elif key == "headers" and isinstance(value, Mapping):
                headers.update({str(k): str(v) for k, v in value.items()})
            elif isinstance(value, (Mapping, list)):
                raise MillstreamError(
                    f"connection {conn.conn_id!r}: extra key {key!r} is taken as a header, and a header "
                    "value must be text; put headers in a 'headers' object"
                )
            else:
                headers[key] = str(value)
        options.update(extra_options or {})
        if _flag(options.get("srv_lookup", False)):
            raise MillstreamError(
                f"connection {conn.conn_id!r}: srv_lookup needs DNS SRV resolution (dnspython), which "
                "Millstream does not ship; put the target host and port in the connection"
            )
        return headers, options

    def _auth(self, conn: Connection) -> httpx.Auth | None:
        if conn.login:
            made = self.auth_type(conn.login, conn.password)
        elif self._auth_type:
            made = self._auth_type()
        else:
            return None
        return _httpx_auth(made)

    def _socket_options(self) -> list[tuple[int, int, int]] | None:
        if not self.tcp_keep_alive:
            return None
        opts = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
        for name, value in (
            ("TCP_KEEPIDLE", self.tcp_keep_alive_idle),
            ("TCP_KEEPINTVL", self.tcp_keep_alive_interval),
            ("TCP_KEEPCNT", self.tcp_keep_alive_count),
        ):
            if hasattr(socket, name):  # not every platform has every option
                opts.append((socket.IPPROTO_TCP, getattr(socket, name), value))
        return opts

    def _client_kwargs(self, options: Mapping[str, Any], headers: Mapping[str, str], *, sync: bool) -> Any:
        verify = options.get("verify", options.get("verify_ssl", True))
        tls = _ssl_context(verify, options.get("cert"))
        trust_env = _flag(options.get("trust_env", True))
        transport_cls: Any = httpx.HTTPTransport if sync else httpx.AsyncHTTPTransport
        sockets = self._socket_options()

        def transport(proxy: str | None = None) -> Any:
            return transport_cls(verify=tls, trust_env=trust_env, proxy=proxy, socket_options=sockets)

        proxies = options.get("proxies", options.get("proxy"))
        mounts: dict[str, Any] = {}
        if isinstance(proxies, Mapping):  # requests' {"http": url, "https": url}
            mounts = {
                (key if "://" in key else f"{key}://"): transport(str(url))
                for key, url in proxies.items()
                if url
            }
        kwargs: dict[str, Any] = {
            "base_url": self.base_url,
            "headers": dict(headers),
            "timeout": _timeout(options.get("timeout")),
            "follow_redirects": _flag(options.get("allow_redirects", True)),
            "max_redirects": int(options.get("max_redirects", 30)),  # requests' limit
            "trust_env": trust_env,
            "mounts": mounts or None,
        }
        if sync and self.transport is not None:
            kwargs["transport"] = self.transport
        else:
            kwargs["transport"] = transport(proxies if isinstance(proxies, str) and proxies else None)
        return kwargs

    # -- clients and calls --------------------------------------------------------------------

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> HttpClient:
        """An ``httpx.Client`` set up from the connection (base URL, auth, headers, TLS,
        proxies, timeout, redirects); ``headers`` are added to the connection's. Close it
        (or use it in ``with``) when done."""
        call = self._prepare(None, None, headers, extra_options, {})
        kwargs = self._client_kwargs(call.options, call.headers, sync=True)
        return HttpClient(auth=call.auth, **kwargs)

    def _prepare(
        self,
        endpoint: str | None,
        data: Any,
        headers: Mapping[str, Any] | None,
        extra_options: Mapping[str, Any] | None,
        request_kwargs: Mapping[str, Any],
        method: str | None = None,
    ) -> PreparedCall:
        conn = self.connection
        self._set_base_url(conn)
        conn_headers, options = self._split_extra(conn, extra_options)
        self.merged_extra = options
        all_headers = {
            **conn_headers,
            **self.default_headers,
            **{str(k): str(v) for k, v in (headers or {}).items()},
        }
        method = (method or self.method).upper()
        request = dict(request_kwargs)
        auth = request.pop("auth", None)
        if method == "GET":
            if data:
                request["params"] = data
        elif method != "HEAD" and data is not None and data != {}:
            # requests' data=: a mapping is form-encoded, text or bytes is the raw body.
            request["data" if isinstance(data, Mapping) else "content"] = data
        return PreparedCall(
            method=method,
            url=url_from_endpoint(self.base_url, endpoint),
            options=options,
            headers=all_headers,
            auth=_httpx_auth(auth) if auth is not None else self._auth(conn),
            request=request,
        )

    def run(
        self,
        endpoint: str | None = None,
        data: dict[str, Any] | str | None = None,
        headers: dict[str, Any] | None = None,
        extra_options: dict[str, Any] | None = None,
        **request_kwargs: Any,
    ) -> HttpResponse:
        """Send one request: ``data`` is the query string of a GET and the body of other
        methods (HEAD sends none); ``request_kwargs`` (``json=``, ``files=``, ``params=``,
        ``cookies=``, ``auth=``) go to the request. 4xx/5xx raise
        :class:`HttpErrorException` unless ``extra_options={"check_response": False}``."""
        call = self._prepare(endpoint, data, headers, extra_options, request_kwargs)
        kwargs = self._client_kwargs(call.options, call.headers, sync=True)
        client = HttpClient(auth=call.auth, **kwargs)
        self.log.debug("Sending '%s' to url: %s", call.method, call.url)
        try:
            request = client.build_request(call.method, call.url, **call.request)
            response = client.send(request, stream=call.stream)
        except BaseException:
            client.close()
            raise
        if not call.stream:  # a streamed body needs the client's connection until it is read
            client.close()
        if call.check_response:
            self.check_response(response)
        return response

    async def arun(
        self,
        endpoint: str | None = None,
        data: dict[str, Any] | str | None = None,
        headers: dict[str, Any] | None = None,
        extra_options: dict[str, Any] | None = None,
        **request_kwargs: Any,
    ) -> HttpResponse:
        """:meth:`run` on ``httpx.AsyncClient``, for triggers (the body is always read;
        the connection is looked up in a thread, as a secrets backend may block)."""
        import asyncio

        if self._conn is None:
            self._conn = await asyncio.to_thread(self.get_connection, self.http_conn_id)
        call = self._prepare(endpoint, data, headers, extra_options, request_kwargs)
        kwargs = self._client_kwargs(call.options, call.headers, sync=False)
        async with AsyncHttpClient(auth=call.auth, **kwargs) as client:
            response = await client.request(call.method, call.url, **call.request)
        if call.check_response:
            self.check_response(response)
        return as_http_response(response)

    def check_response(self, response: httpx.Response) -> None:
        """Raise :class:`HttpErrorException` (status, reason, body head) on 4xx/5xx."""
        if response.status_code >= 400:
            if not response.is_stream_consumed:
                response.read()
            self.log.error("HTTP error: %s %s", response.status_code, response.reason_phrase)
            self.log.error(_body_head(response))
            raise HttpErrorException(response)

    def run_with_advanced_retry(self, _retry_args: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
        """:meth:`run`, tried again on intermittent failures.

        With tenacity installed, ``_retry_args`` are ``tenacity.Retrying``'s arguments, as
        in Airflow (``stop=``, ``wait=``, ``retry=``, ...). The simple form
        ``{"stop_after_attempt": 3, "wait": 1.0}`` needs no tenacity: at most that many
        attempts, ``wait`` seconds apart (default 3 and 1.0), retrying only on
        ``httpx.TransportError`` (refused, reset, timed out) and 5xx responses, and
        re-raising the last error when attempts run out."""
        if set(_retry_args) <= SIMPLE_RETRY_KEYS:
            return self._simple_retry(_retry_args, lambda: self.run(*args, **kwargs))
        try:
            import tenacity
        except ImportError:
            raise MillstreamError(
                "run_with_advanced_retry: these _retry_args are tenacity's and tenacity is not installed; "
                "install it, or use the simple form {'stop_after_attempt': 3, 'wait': 1.0}"
            ) from None
        return tenacity.Retrying(**_retry_args)(self.run, *args, **kwargs)

    def _simple_retry(self, retry_args: Mapping[str, Any], call: Callable[[], T]) -> T:
        attempts = int(retry_args.get("stop_after_attempt", 3))
        wait = float(retry_args.get("wait", 1.0))
        if attempts < 1:
            raise MillstreamError("run_with_advanced_retry: stop_after_attempt must be at least 1")
        for attempt in range(1, attempts + 1):
            try:
                return call()
            except (httpx.TransportError, HttpErrorException) as e:
                retryable = isinstance(e, httpx.TransportError) or e.status_code >= 500
                if not retryable or attempt == attempts:
                    raise
                self.log.warning("[Try %d of %d] %s: %s; retrying", attempt, attempts, type(e).__name__, e)
                time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def url_from_endpoint(self, endpoint: str | None) -> str:
        """The full URL of ``endpoint`` under the connection's base URL."""
        if not self.base_url:
            self._set_base_url(self.connection)
        return url_from_endpoint(self.base_url, endpoint)

    def test_connection(self) -> tuple[bool, str]:
        """Send the hook's method to the base URL: (worked, what happened)."""
        try:
            self.run()
            return True, "Connection successfully tested"
        except Exception as e:  # noqa: BLE001 - any failure is the answer
            return False, str(e)


def _httpx_auth(auth: Any) -> httpx.Auth | None:
    """``auth`` as httpx takes it: an ``httpx.Auth``, a (user, password) pair, or requests'
    HTTPBasicAuth / HTTPDigestAuth (carried over by their username and password)."""
    if auth is None or isinstance(auth, httpx.Auth):
        return auth
    if isinstance(auth, tuple) and len(auth) == 2:
        return httpx.BasicAuth(*auth)
    name = type(auth).__name__
    if name in ("HTTPBasicAuth", "HTTPProxyAuth") and hasattr(auth, "username"):
        return httpx.BasicAuth(auth.username, auth.password)
    if name == "HTTPDigestAuth" and hasattr(auth, "username"):
        return httpx.DigestAuth(auth.username, auth.password)
    raise MillstreamError(
        f"HttpHook: auth {name} is not an httpx.Auth; Millstream's HttpHook uses httpx, so give auth_type an "
        "httpx.Auth class (httpx.BasicAuth, httpx.DigestAuth, or your own subclass)"
    )
