"""``ObjectStoragePath``: Airflow 3's path on object storage, a ``pathlib``-like path on any
fsspec filesystem (``s3://bucket/key``, ``gs://``, ``file://``, ``memory://``…), built on
universal_pathlib as Airflow's is.

A path may name a connection, as the user part of its URL (``s3://aws_default@bucket/``)
or with ``conn_id=``; derived paths (``base / "file"``) keep it. Millstream has no
Connections yet, so a path that names one refuses to reach its filesystem, with a message
saying so, rather than quietly using other credentials. Without a connection the
filesystem's own configuration applies (environment credentials, or storage options
given as keyword arguments).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from upath import UPath
from upath.extensions import ProxyUPath, classmethod_or_method


class ConnectionsNotAvailableError(RuntimeError):
    """A path names a connection, and Millstream cannot resolve connections yet."""


class _Unresolved:
    """Stands where the filesystem would be for a path whose connection cannot be resolved."""

    def __init__(self, conn_id: str) -> None:
        self._conn_id = conn_id

    def __getattr__(self, name: str) -> Any:
        raise ConnectionsNotAvailableError(
            f"ObjectStoragePath with conn_id={self._conn_id!r}: Millstream has no Connections yet, so "
            "the connection's credentials cannot be used; drop the connection from the path and give "
            "the filesystem's storage options (or its environment variables) instead"
        )


class ObjectStoragePath(ProxyUPath):
    """A path on object storage (see the module docstring)."""

    __slots__ = ("_conn_id",)

    def __init__(
        self, *args: Any, protocol: str | None = None, conn_id: str | None = None, **storage_options: Any
    ):
        storage_options.pop("conn_id", None)
        if args and isinstance(args[0], ObjectStoragePath):
            conn_id = conn_id or args[0].conn_id
        elif args:
            parsed = urlsplit(str(args[0]))
            userinfo, has_user, host = parsed.netloc.rpartition("@")
            if has_user and parsed.scheme:
                conn_id = conn_id or userinfo or None
                args = (parsed._replace(netloc=host).geturl(), *args[1:])
                protocol = protocol or parsed.scheme
        self._conn_id = conn_id
        super().__init__(*args, protocol=protocol, **storage_options)
        self._refuse_unresolved(self.__wrapped__)

    def _refuse_unresolved(self, wrapped: UPath) -> None:
        if self._conn_id is not None:
            wrapped._fs_cached = _Unresolved(self._conn_id)

    @classmethod_or_method
    def _from_upath(cls_or_self: Any, upath: UPath, /) -> Any:  # type: ignore[override]  # noqa: N805
        """Wrap a derived path, keeping the connection of the path it came from."""
        is_instance = isinstance(cls_or_self, ObjectStoragePath)
        cls = type(cls_or_self) if is_instance else cls_or_self
        if isinstance(upath, cls):
            return upath
        obj = object.__new__(cls)
        obj.__wrapped__ = upath
        obj._conn_id = cls_or_self._conn_id if is_instance else None
        obj._refuse_unresolved(upath)
        return obj

    @property
    def conn_id(self) -> str | None:
        return getattr(self, "_conn_id", None)

    @property
    def bucket(self) -> str:
        return urlsplit(str(self)).netloc

    @property
    def container(self) -> str:
        return self.bucket

    @property
    def key(self) -> str:
        return urlsplit(str(self)).path.lstrip("/")

    @property
    def namespace(self) -> str:
        return f"{self.protocol}://{self.bucket}" if self.bucket else self.protocol

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectStoragePath) and (self.protocol, self.conn_id, str(self)) == (
            other.protocol,
            other.conn_id,
            str(other),
        )

    def __hash__(self) -> int:
        return hash((self.protocol, self.conn_id, str(self)))
