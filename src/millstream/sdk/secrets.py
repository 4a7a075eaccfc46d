"""Where Variables and Connections come from: a chain of secrets backends, asked in order.

The chain is Airflow's: the environment first (``MILLSTREAM_VAR_<KEY>``,
``MILLSTREAM_CONN_<ID>`` and, so a ported deployment keeps its environment,
``AIRFLOW_VAR_<KEY>`` / ``AIRFLOW_CONN_<ID>``), then the optional backend the
``[secrets]`` settings name (a local file, or a class of your own), then the metadata store.
The first backend that knows a key wins; a backend that fails is an error, not a skip,
because falling through to the next one could hand a task a stale or wrong credential.

Writing a backend of your own: subclass :class:`SecretsBackend`, implement
``get_variable`` and ``get_conn_value`` (return ``None`` for "not here"), and name the
class in ``[secrets] backend = "package.module.Class"`` with its keyword arguments as
JSON in ``backend_kwargs``.

The metadata store is the engine's: the store layer registers it here when it is
imported (:func:`register_metastore`), so authoring code never reaches the database
itself. Lookups made while DAG files are parsed go through a TTL cache
(:func:`parse_cache`), so a ``Variable.get`` at the top of a DAG file does not query
the database on every parse.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from millstream.settings import ConfigError

ENV_PREFIXES = ("MILLSTREAM", "AIRFLOW")


class SecretsBackend:
    """One place secrets may live. Return ``None`` for a key this backend does not hold."""

    name = "backend"

    def get_variable(self, key: str) -> str | None:
        return None

    def get_conn_value(self, conn_id: str) -> str | None:
        """A connection as its URI or its JSON text (either form Airflow writes)."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class EnvironmentVariablesBackend(SecretsBackend):
    """``MILLSTREAM_VAR_<KEY>`` / ``AIRFLOW_VAR_<KEY>`` and ``..._CONN_<ID>``, key upper-cased."""

    name = "environment"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def _get(self, kind: str, key: str) -> str | None:
        for prefix in ENV_PREFIXES:
            value = self.environ.get(f"{prefix}_{kind}_{key.upper()}")
            if value is not None:
                return value
        return None

    def get_variable(self, key: str) -> str | None:
        return self._get("VAR", key)

    def get_conn_value(self, conn_id: str) -> str | None:
        return self._get("CONN", conn_id)


class LocalFilesystemBackend(SecretsBackend):
    """Variables and connections from files, as Airflow's ``LocalFilesystemBackend``:
    JSON (``{"key": "value"}``; a connection as a URI string or a JSON object), YAML the
    same, or ``.env`` lines (``KEY=value``; a connection as a URI or JSON text). Files are
    read again when they change, so editing one needs no restart."""

    name = "local_filesystem"

    def __init__(self, variables_file_path: str | None = None, connections_file_path: str | None = None):
        self.variables_file_path = variables_file_path
        self.connections_file_path = connections_file_path
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def _load(self, path: str | None) -> dict[str, Any]:
        if not path:
            return {}
        p = Path(path).expanduser()
        try:
            mtime = p.stat().st_mtime
        except FileNotFoundError:
            raise ConfigError(
                f"secrets file {p} does not exist ([secrets] backend_kwargs names it)"
            ) from None
        hit = self._cache.get(path)
        if hit and hit[0] == mtime:
            return hit[1]
        data = parse_secrets_file(p)
        self._cache[path] = (mtime, data)
        return data

    def get_variable(self, key: str) -> str | None:
        value = self._load(self.variables_file_path).get(key)
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value)

    def get_conn_value(self, conn_id: str) -> str | None:
        value = self._load(self.connections_file_path).get(conn_id)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list):  # Airflow allowed a one-element list per id
            if len(value) != 1:
                raise ConfigError(
                    f"{self.connections_file_path}: connection {conn_id!r} is defined {len(value)} times"
                )
            value = value[0]
        return json.dumps(value)


def parse_secrets_file(path: Path) -> dict[str, Any]:
    """A JSON, YAML or ``.env`` secrets file as a dict, with a clear error naming the file."""
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text) if text.strip() else {}
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif suffix == ".env":
            data = {}
            for n, raw in enumerate(text.splitlines(), 1):
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                key, sep, value = line.partition("=")
                if not sep or not key.strip():
                    raise ConfigError(f"{path}:{n}: expected KEY=value, got {raw!r}")
                data[key.strip()] = value.strip()
        else:
            raise ConfigError(f"secrets file {path}: use a .json, .yaml, .yml or .env file")
    except (ValueError, ImportError) as e:  # json and yaml errors are ValueErrors (or yaml.YAMLError)
        raise ConfigError(f"{path}: cannot read secrets: {e}") from None
    except Exception as e:
        if type(e).__module__.startswith("yaml"):
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        raise
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of names to values")
    return data


# -- the chain ------------------------------------------------------------------------------

_lock = threading.RLock()
_chain: list[SecretsBackend] | None = None
_metastore_factory: Callable[[], SecretsBackend] | None = None


def register_metastore(factory: Callable[[], SecretsBackend]) -> None:
    """The store layer's backend, last in the chain. Called when the store is imported."""
    global _metastore_factory, _chain
    with _lock:
        _metastore_factory = factory
        _chain = None


def configured_backends() -> list[SecretsBackend]:
    """The backends the ``[secrets]`` settings add between the environment and the store."""
    from millstream.settings import Settings

    settings = Settings.load()
    path = settings.backend or ""
    if not path:
        return []
    try:
        kwargs = json.loads(settings.backend_kwargs or "{}")
    except ValueError as e:
        raise ConfigError(f"[secrets] backend_kwargs is not a JSON object: {e}") from None
    aliases = {
        "local_filesystem": "millstream.sdk.secrets.LocalFilesystemBackend",
        # Airflow's class path, so a ported airflow.cfg keeps working.
        "airflow.secrets.local_filesystem.LocalFilesystemBackend": "millstream.sdk.secrets.LocalFilesystemBackend",
    }
    if path in ("vault", "airflow.providers.hashicorp.secrets.vault.VaultBackend"):
        raise ConfigError(
            "[secrets] backend: Millstream has no HashiCorp Vault backend yet (it could not be tested "
            "against a real Vault server); use local_filesystem, or a backend class of your own "
            "(see the SecretsBackend docstring)"
        )
    target = aliases.get(path, path)
    module, _, cls_name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"[secrets] backend {path!r} cannot be imported: {e}") from None
    try:
        return [cls(**kwargs)]
    except TypeError as e:
        raise ConfigError(f"[secrets] backend {path!r}: backend_kwargs do not fit it: {e}") from None


def backends() -> list[SecretsBackend]:
    """The chain, built on first use."""
    global _chain
    with _lock:
        if _chain is None:
            chain: list[SecretsBackend] = [EnvironmentVariablesBackend(), *configured_backends()]
            if _metastore_factory is not None:
                chain.append(_metastore_factory())
            _chain = chain
        return _chain


def reset() -> None:
    """Build the chain again on next use (after the settings or the store changed)."""
    global _chain
    with _lock:
        _chain = None
        _cache.clear()


# -- the parse-time cache -------------------------------------------------------------------

_cache: dict[str, tuple[float, str | None]] = {}
_caching = threading.local()


@contextmanager
def parse_cache(
    ttl: float, seed: Mapping[str, tuple[float, str | None]] | None = None
) -> Iterator[dict[str, Any]]:
    """Cache lookups for ``ttl`` seconds while DAG files are parsed. ``seed`` carries the
    entries an earlier parse found (the parsing child is a fresh process each time, so the
    scheduler hands them over); the entries in effect at the end are yielded back."""
    if seed:
        now = time.time()
        _cache.update({k: v for k, v in seed.items() if v[0] > now})
    _caching.ttl = ttl
    try:
        yield _cache
    finally:
        _caching.ttl = None


def lookup(kind: str, key: str) -> str | None:
    """The first value any backend of the chain has for a variable (``kind`` "var") or a
    connection ("conn"), or ``None``."""
    ttl = getattr(_caching, "ttl", None)
    cache_key = f"{kind}:{key}"
    if ttl:
        hit = _cache.get(cache_key)
        if hit is not None and hit[0] > time.time():
            return hit[1]
    value: str | None = None
    for backend in backends():
        value = backend.get_variable(key) if kind == "var" else backend.get_conn_value(key)
        if value is not None:
            break
    if ttl:
        _cache[cache_key] = (time.time() + ttl, value)
    return value


def metastore() -> Any:
    """The store's backend (for writes: ``Variable.set``), or a clear error without one."""
    for backend in backends():
        if getattr(backend, "writable", False):
            return backend
    raise ConfigError(
        "no metadata store to write to: Variable.set/delete need Millstream's store (run inside a "
        "task, `dags test`, or a process that imported millstream.store)"
    )
