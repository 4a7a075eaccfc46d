"""Assets as a task sees them: ``outlet_events``, ``inlet_events`` and
``triggering_asset_events`` in its context."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, overload

from millstream.errors import TaskFlowError
from millstream.sdk.assets import Asset, AssetAlias, Metadata
from millstream.store import Store
from millstream.store import assets as assets_q


@dataclass(frozen=True)
class AssetEvent:
    """One recorded event of an asset (names as in Airflow's ``AssetEvent``)."""

    id: int
    asset: Asset
    timestamp: datetime
    extra: Mapping[str, Any]
    source: str
    source_dag_id: str | None
    source_task_id: str | None
    source_run_id: str | None
    source_map_index: int | None
    source_aliases: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> AssetEvent:
        return cls(
            id=r["id"],
            asset=_asset(r["asset_name"], r["asset_uri"]),
            timestamp=r["timestamp"],
            extra=dict(r["extra"] or {}),
            source=r["source"],
            source_dag_id=r["source_dag_id"],
            source_task_id=r["source_task_id"],
            source_run_id=r["source_run_id"],
            source_map_index=r["source_map_index"],
            source_aliases=tuple(r["source_aliases"] or ()),
        )


def _asset(name: str, uri: str) -> Asset:
    a = Asset.__new__(Asset)  # already validated when it was registered
    a.name, a.uri, a.group, a.extra, a.watchers = name, uri, "asset", {}, ()
    return a


def _name_of(key: Asset | AssetAlias | str) -> str:
    if isinstance(key, Asset | AssetAlias):
        return key.name
    if isinstance(key, str):
        return key
    raise TypeError(f"look assets up by Asset, AssetAlias or name, got {key!r}")


# -- outlets ------------------------------------------------------------------------------


@dataclass
class OutletEventAccessor:
    """``outlet_events[asset]``: set ``.extra`` for the event the task's success emits;
    for an alias, ``.add(Asset(...), extra=...)`` emits an event for a concrete asset."""

    key: Asset | AssetAlias
    extra: dict[str, Any] = field(default_factory=dict)
    added: list[tuple[Asset, dict[str, Any]]] = field(default_factory=list)

    def add(self, asset: Asset, extra: Mapping[str, Any] | None = None) -> None:
        if not isinstance(self.key, AssetAlias):
            raise TaskFlowError(f"add() is for aliases; {self.key!r} is an asset, so set .extra instead")
        if not isinstance(asset, Asset):
            raise TaskFlowError(f"outlet_events[{self.key!r}].add() takes an Asset, got {asset!r}")
        self.added.append((asset, dict(extra or {})))


class OutletEventAccessors(Mapping[Any, OutletEventAccessor]):
    def __init__(self, task_id: str, outlets: Sequence[Asset | AssetAlias]) -> None:
        self.task_id = task_id
        self._by_name = {(type(o), o.name): OutletEventAccessor(o) for o in outlets}

    def __getitem__(self, key: Asset | AssetAlias) -> OutletEventAccessor:
        if not isinstance(key, Asset | AssetAlias):
            raise TypeError(f"outlet_events is keyed by Asset or AssetAlias, got {key!r}")
        try:
            return self._by_name[(type(key), key.name)]
        except KeyError:
            raise KeyError(
                f"task {self.task_id!r} has no outlet {key!r}; add it to the task's outlets=[...]"
            ) from None

    def __iter__(self) -> Iterator[Any]:
        return (a.key for a in self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def take(self, value: Any) -> Any:
        """Apply what a generator task yielded (``Metadata``); returns its return value."""
        try:
            while True:
                item = next(value)
                if not isinstance(item, Metadata):
                    raise TaskFlowError(
                        f"task {self.task_id!r} yielded {type(item).__name__}; a task may only "
                        "yield Metadata(asset, extra) (return its result instead)"
                    )
                if item.alias is not None:
                    self[item.alias].add(item.asset, item.extra)
                else:
                    self[item.asset].extra.update(item.extra)
        except StopIteration as stop:
            return stop.value

    def events(self) -> list[dict[str, Any]]:
        """What the task's success emits: one event per outlet asset, plus what was added
        through aliases."""
        out: list[dict[str, Any]] = []
        for acc in self._by_name.values():
            for extra in (acc.extra, *(x for _, x in acc.added)):
                try:
                    json.dumps(extra, allow_nan=False)
                except (TypeError, ValueError) as e:
                    raise TaskFlowError(
                        f"task {self.task_id!r}: the extra of its event for {acc.key!r} is not JSON ({e}); "
                        "use strings, numbers, lists and dicts"
                    ) from None
            if isinstance(acc.key, Asset):
                out.append(
                    {"asset_name": acc.key.name, "uri": acc.key.uri, "extra": acc.extra, "aliases": []}
                )
            for asset, extra in acc.added:
                out.append(
                    {"asset_name": asset.name, "uri": asset.uri, "extra": extra, "aliases": [acc.key.name]}
                )
        return out


# -- reading events -----------------------------------------------------------------------


class AssetEventSequence(Sequence[AssetEvent]):
    """An asset's events, oldest first, read from the store as they are indexed (so
    ``inlet_events[a][-1]`` reads one row, however many events ``a`` has)."""

    def __init__(self, store: Store, name: str) -> None:
        self._store = store
        self._name = name
        self._len: int | None = None

    def __len__(self) -> int:
        if self._len is None:
            with self._store.read() as conn:
                self._len = assets_q.count_events(conn, self._name)
        return self._len

    @overload
    def __getitem__(self, i: int) -> AssetEvent: ...
    @overload
    def __getitem__(self, i: slice) -> list[AssetEvent]: ...
    def __getitem__(self, i: int | slice) -> AssetEvent | list[AssetEvent]:
        n = len(self)
        if isinstance(i, slice):
            start, stop, step = i.indices(n)
            if step != 1:
                return [self[j] for j in range(start, stop, step)]
            return self._read(start, max(0, stop - start))
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise IndexError(f"asset {self._name!r} has {n} event(s); index {i} is out of range")
        return self._read(j, 1)[0]

    def _read(self, offset: int, limit: int) -> list[AssetEvent]:
        if limit == 0:
            return []
        with self._store.read() as conn:
            rows = assets_q.events_of(conn, self._name, limit=limit, offset=offset, newest_first=False)
        return [AssetEvent.from_row(r) for r in rows]

    def __iter__(self) -> Iterator[AssetEvent]:
        for start in range(0, len(self), 500):
            yield from self._read(start, 500)


class InletEventAccessors(Mapping[Any, Sequence[AssetEvent]]):
    """``inlet_events[asset]``: the events of an asset the task lists in ``inlets``
    (``inlet_events[alias]``: the events emitted through that alias; ``inlet_events[0]``:
    the first inlet's, as in Airflow)."""

    def __init__(self, store: Store, task_id: str, inlets: Sequence[Asset | AssetAlias]) -> None:
        self._store = store
        self._task_id = task_id
        self._inlets = list(inlets)
        self._names = {i.name for i in inlets if isinstance(i, Asset)}
        self._aliases = {i.name for i in inlets if isinstance(i, AssetAlias)}

    def __getitem__(self, key: Asset | AssetAlias | str | int) -> Sequence[AssetEvent]:
        if isinstance(key, int) and not isinstance(key, bool):
            try:
                key = self._inlets[key]
            except IndexError:
                raise IndexError(
                    f"task {self._task_id!r} has {len(self._inlets)} inlet(s); no inlet {key}"
                ) from None
        if isinstance(key, AssetAlias) and key.name in self._aliases:
            with self._store.read() as conn:
                return [AssetEvent.from_row(r) for r in assets_q.events_via_alias(conn, key.name)]
        name = _name_of(key)  # type: ignore[arg-type]
        if isinstance(key, AssetAlias) or name not in self._names:
            raise KeyError(f"task {self._task_id!r} has no inlet {key!r}; add it to the task's inlets=[...]")
        return AssetEventSequence(self._store, name)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._names))

    def __len__(self) -> int:
        return len(self._names)


class TriggeringAssetEvents(Mapping[Any, list[AssetEvent]]):
    """``triggering_asset_events``: the events that caused this asset-triggered run, by
    asset (look up by ``Asset``, by name, or by the ``AssetAlias`` they came through)."""

    def __init__(self, store: Store | None, run_pk: int) -> None:
        self._store = store
        self._run_pk = run_pk
        self._by_name: dict[str, list[AssetEvent]] | None = None

    def _load(self) -> dict[str, list[AssetEvent]]:
        if self._by_name is None:
            self._by_name = {}
            if self._store is not None:
                with self._store.read() as conn:
                    rows = assets_q.run_events(conn, self._run_pk)
                for r in rows:
                    ev = AssetEvent.from_row(r)
                    self._by_name.setdefault(ev.asset.name, []).append(ev)
        return self._by_name

    def __getitem__(self, key: Asset | AssetAlias | str) -> list[AssetEvent]:
        by = self._load()
        if isinstance(key, AssetAlias):
            return [e for evs in by.values() for e in evs if key.name in e.source_aliases]
        return by.get(_name_of(key), [])

    def __contains__(self, key: object) -> bool:
        try:
            return bool(self[key])  # type: ignore[index]
        except TypeError:
            return False

    def __iter__(self) -> Iterator[Asset]:
        return (evs[0].asset for evs in self._load().values())

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        return f"TriggeringAssetEvents({self._load()!r})"
