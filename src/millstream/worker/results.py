"""Reading upstream results inside a worker, including the lazy fan-in sequence."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from millstream.store import Store, task_instances
from millstream.store import results as q

_MISSING = object()


def loads(text: str) -> Any:
    """A stored result; an ObjectStoragePath in it comes back as a path (with its connection)."""
    if '"__objectstoragepath__"' in text:
        from millstream.sdk.objectstorage import from_result

        return json.loads(text, object_hook=from_result)
    return json.loads(text)


class ResultReader:
    """Reads task results from the store, caching recently used values.

    A worker process keeps one reader for its lifetime: 10 000 instances mapped over the
    same list load that list once per worker, not once per instance.
    """

    def __init__(self, store: Store, cache_size: int = 32) -> None:
        self.store = store
        self._cache: OrderedDict[tuple[int, str, int, str], Any] = OrderedDict()
        self._cache_size = cache_size
        self._counts: dict[tuple[int, str], int] = {}
        self._versions: dict[int, int] = {}

    def use_version(self, run_pk: int, version: int) -> None:
        """Results are immutable until a run is cleared; forget a cleared run's cache."""
        if self._versions.get(run_pk, version) != version:
            for k in [k for k in self._cache if k[0] == run_pk]:
                del self._cache[k]
            for k in [k for k in self._counts if k[0] == run_pk]:
                del self._counts[k]
        self._versions[run_pk] = version

    def get(
        self, run_pk: int, task_id: str, map_index: int, key: str = "return_value", default: Any = None
    ) -> Any:
        """The stored value, or ``default`` when there is none (a stored ``None`` is ``None``)."""
        ck = (run_pk, task_id, map_index, key)
        if ck in self._cache:
            self._cache.move_to_end(ck)
            value = self._cache[ck]
        else:
            with self.store.read() as conn:
                text = q.get_one(conn, run_pk, task_id, map_index, key)
            value = _MISSING if text is None else loads(text)
            self._cache[ck] = value
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return default if value is _MISSING else value

    def count(self, run_pk: int, task_id: str, key: str) -> int:
        with self.store.read() as conn:
            return q.count(conn, run_pk, task_id, key)

    def page(self, run_pk: int, task_id: str, key: str, after: int, limit: int) -> list[tuple[int, str]]:
        with self.store.read() as conn:
            return q.page(conn, run_pk, task_id, key, after=after, limit=limit)

    def instance_count(self, run_pk: int, task_id: str) -> int:
        """How many instances a mapped task expanded into (cached: it never changes)."""
        ck = (run_pk, task_id)
        if ck not in self._counts:
            with self.store.read() as conn:
                self._counts[ck] = task_instances.count(conn, run_pk, task_id)
        return self._counts[ck]

    def nth(self, run_pk: int, task_id: str, key: str, n: int) -> Any:
        with self.store.read() as conn:
            text = q.nth(conn, run_pk, task_id, key, n)
        return None if text is None else loads(text)


class LazyResults(Sequence[Any]):
    """The results of every instance of a mapped task, in map_index order.

    Only instances that produced a result are included: a failed instance leaves a gap,
    not a ``None``. ``len()`` is one COUNT query; iteration reads pages of ``page_size``.
    """

    def __init__(self, reader: ResultReader, run_pk: int, task_id: str, key: str, page_size: int = 1000):
        self._reader = reader
        self._run_pk = run_pk
        self._task_id = task_id
        self._key = key
        self._page_size = page_size
        self._len: int | None = None

    def __len__(self) -> int:
        if self._len is None:
            self._len = self._reader.count(self._run_pk, self._task_id, self._key)
        return self._len

    def __iter__(self) -> Iterator[Any]:
        after = -2
        while True:
            rows = self._reader.page(self._run_pk, self._task_id, self._key, after, self._page_size)
            if not rows:
                return
            for _, text in rows:
                yield loads(text)
            after = rows[-1][0]

    @overload
    def __getitem__(self, i: int) -> Any: ...
    @overload
    def __getitem__(self, i: slice) -> list[Any]: ...
    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} out of range for {n} results of {self._task_id!r}")
        return self._reader.nth(self._run_pk, self._task_id, self._key, i)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, tuple, LazyResults)):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"LazyResults({self._task_id!r}, len={len(self)})"


class UpstreamInstances(Sequence[Any]):
    """A mapped upstream's output, one value per instance, for mapping index for index.

    Unlike the fan-in, position i is instance i (``None`` where it produced nothing).
    """

    def __init__(self, reader: ResultReader, run_pk: int, task_id: str, key: str) -> None:
        self._reader, self._run_pk, self._task_id, self._key = reader, run_pk, task_id, key

    def __len__(self) -> int:
        return self._reader.instance_count(self._run_pk, self._task_id)

    def __getitem__(self, i: Any) -> Any:
        if not isinstance(i, int):
            raise TypeError("index with an int")
        return self._reader.get(self._run_pk, self._task_id, i, self._key)


class MappedSequence(Sequence[Any]):
    """``.map(fn)``: ``fn`` applied to each value when it is read."""

    def __init__(self, source: Sequence[Any], fn: Callable[[Any], Any]) -> None:
        self._source, self._fn = source, fn

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._fn(self._source[i])


class ZippedSequence(Sequence[Any]):
    """``.zip(...)``: tuples; with a fill value, as long as the longest part."""

    def __init__(self, parts: list[Sequence[Any]], fill: tuple[Any] | None) -> None:
        self._parts, self._fill = parts, fill

    def __len__(self) -> int:
        lengths = [len(p) for p in self._parts]
        return max(lengths, default=0) if self._fill is not None else min(lengths, default=0)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        fill = self._fill[0] if self._fill is not None else None
        return tuple(p[i] if i < len(p) else fill for p in self._parts)


class ConcatSequence(Sequence[Any]):
    """``.concat(...)``: the values of each part in turn."""

    def __init__(self, parts: list[Sequence[Any]]) -> None:
        self._parts = parts

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        for p in self._parts:
            if i < len(p):
                return p[i]
            i -= len(p)
        raise IndexError(i)
