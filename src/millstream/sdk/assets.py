"""Assets: the data a task produces and a DAG can be scheduled on.

``Asset``, ``AssetAlias`` and their ``|`` / ``&`` combinations are authored here and
turned into the plain JSON conditions of :mod:`millstream.core.assets`. Names and
arguments mirror Airflow 3 (``from airflow.sdk import Asset``), so asset-aware DAGs port.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from millstream.core.assets import POLICIES, alias_key, asset_key
from millstream.errors import DagDefinitionError
from millstream.sdk._location import caller_location

#: Schemes whose URIs we understand and normalize. A URI with any other scheme is kept
#: exactly as written: it is an identifier, and we must not guess what it means.
_NEEDS_HOST = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "wasb", "hdfs", "http", "https"})
_DATABASES = frozenset({"postgres", "postgresql", "mysql", "bigquery", "snowflake", "mssql", "trino"})
_RESERVED = frozenset({"millstream", "airflow"})


def _fail(message: str) -> DagDefinitionError:
    filename, lineno = caller_location()
    return DagDefinitionError(message, filename=filename, lineno=lineno)


def normalize_uri(uri: str) -> str:
    """Check URIs of schemes we understand are complete; lower-case the scheme and drop a
    trailing slash (as Airflow does: ``S3://Bucket/Key/`` is ``s3://Bucket/Key``).
    Bucket, host and path keep their case: object stores are case-sensitive."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not scheme:
        return uri
    if scheme in _RESERVED:
        raise _fail(f"Asset uri {uri!r}: the scheme {scheme!r} is reserved")
    if scheme == "file":
        if not parts.path.startswith("/"):
            raise _fail(f"Asset uri {uri!r}: a file URI needs an absolute path, as in file:///data/x.csv")
    elif scheme in _NEEDS_HOST or scheme in _DATABASES:
        if not parts.netloc:
            raise _fail(
                f"Asset uri {uri!r}: a {scheme} URI needs a host or bucket, as in {scheme}://name/path"
            )
    else:
        return uri  # a scheme we do not know: an opaque identifier, kept as written
    path = parts.path.rstrip("/") if parts.path not in ("", "/") else parts.path
    return urlunsplit((scheme, parts.netloc, path, parts.query, parts.fragment))


def _check_extra(extra: Any, where: str) -> dict[str, Any]:
    if extra is None:
        return {}
    if not isinstance(extra, Mapping):
        raise _fail(f"{where}: extra must be a dict, got {type(extra).__name__}")
    try:
        json.dumps(dict(extra), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise _fail(f"{where}: extra must be JSON-serializable ({e})") from None
    return dict(extra)


class BaseAsset:
    """Anything a DAG can be scheduled on: an asset, an alias, or a combination."""

    def __or__(self, other: BaseAsset) -> AssetAny:
        _check_operand(other, "|")
        return AssetAny(self, other)

    def __and__(self, other: BaseAsset) -> AssetAll:
        _check_operand(other, "&")
        return AssetAll(self, other)

    def to_condition(self) -> dict[str, Any]:
        raise NotImplementedError

    def iter_assets(self) -> Iterator[Asset]:
        return iter(())


def _check_operand(other: object, op: str) -> None:
    if not isinstance(other, BaseAsset):
        raise TypeError(f"an asset can only be combined with {op} with another asset, got {other!r}")


class Asset(BaseAsset):
    """A piece of data, named by ``name`` (and optionally a ``uri``).

    As in Airflow 3, a missing ``uri`` is the name and a missing name is the uri. Two
    ``Asset`` objects are the same asset when their name and uri are equal.
    """

    def __init__(
        self,
        name: str | None = None,
        uri: str | None = None,
        group: str | None = None,
        extra: Mapping[str, Any] | None = None,
        *,
        watchers: Sequence[FileArrivalWatcher | AssetWatcher] | None = (),
    ) -> None:
        if name is None and uri is None:
            raise _fail("Asset needs a name (or a uri)")
        for label, value in (("name", name), ("uri", uri)):
            if value is not None and not isinstance(value, str):
                raise _fail(f"Asset {label} must be a string, got {type(value).__name__}")
        name = (name if name is not None else uri or "").strip()
        if not name:
            raise _fail("Asset name must not be empty")
        if len(name.encode()) > 1500:
            raise _fail(f"Asset name is {len(name.encode())} bytes long (UTF-8); the limit is 1500")
        raw_uri = (uri if uri is not None else name).strip()
        if not raw_uri:
            raise _fail(f"Asset {name!r}: uri must not be empty")
        if len(raw_uri) > 1500:
            raise _fail(f"Asset {name!r}: uri is {len(raw_uri)} characters long; the limit is 1500")
        if group is not None and (not isinstance(group, str) or len(group) > 250):
            raise _fail(f"Asset {name!r}: group must be a string of at most 250 characters")
        self.name = name
        self.uri = normalize_uri(raw_uri)
        self.group = group or "asset"
        self.extra = _check_extra(extra, f"Asset {name!r}")
        for w in watchers or ():
            if not isinstance(w, FileArrivalWatcher | AssetWatcher):
                raise _fail(
                    f"Asset {name!r}: watchers must be AssetWatcher or FileArrivalWatcher objects, got {w!r}"
                )
        self.watchers = tuple(watchers or ())

    @property
    def key(self) -> str:
        return asset_key(self.name)

    def to_condition(self) -> dict[str, Any]:
        return {"asset": self.name}

    def iter_assets(self) -> Iterator[Asset]:
        yield self

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uri": self.uri,
            "group": self.group,
            "extra": self.extra,
            "watchers": [w.to_dict(self.name) for w in self.watchers],
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Asset) and (self.name, self.uri) == (other.name, other.uri)

    def __hash__(self) -> int:
        return hash(("asset", self.name, self.uri))

    def __repr__(self) -> str:
        if self.uri == self.name:
            return f"Asset({self.name!r})"
        return f"Asset(name={self.name!r}, uri={self.uri!r})"


class AssetAlias(BaseAsset):
    """A name whose concrete asset a task decides at run time
    (``outlet_events[alias].add(Asset(...))``)."""

    def __init__(self, name: str, group: str | None = None) -> None:
        if not isinstance(name, str) or not name.strip():
            raise _fail("AssetAlias name must be a non-empty string")
        self.name = name.strip()
        self.group = group or "asset"

    @property
    def key(self) -> str:
        return alias_key(self.name)

    def to_condition(self) -> dict[str, Any]:
        return {"alias": self.name}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AssetAlias) and self.name == other.name

    def __hash__(self) -> int:
        return hash(("alias", self.name))

    def __repr__(self) -> str:
        return f"AssetAlias({self.name!r})"


class _Combined(BaseAsset):
    op = ""
    objects: tuple[BaseAsset, ...]

    def __init__(self, *objects: BaseAsset) -> None:
        if not objects:
            raise _fail(f"{type(self).__name__} needs at least one asset")
        flat: list[BaseAsset] = []
        for o in objects:
            _check_operand(o, "&" if self.op == "all" else "|")
            # a | b | c is one "any" of three, not nested pairs.
            flat.extend(o.objects if isinstance(o, _Combined) and o.op == self.op else (o,))
        self.objects = tuple(flat)

    def to_condition(self) -> dict[str, Any]:
        return {self.op: [o.to_condition() for o in self.objects]}

    def iter_assets(self) -> Iterator[Asset]:
        for o in self.objects:
            yield from o.iter_assets()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Combined) and other.op == self.op and self.objects == other.objects

    def __hash__(self) -> int:
        return hash((self.op, self.objects))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.objects))})"


class AssetAll(_Combined):
    """Met when every part has a new event."""

    op = "all"


class AssetAny(_Combined):
    """Met when any part has a new event."""

    op = "any"


@dataclass(frozen=True)
class Metadata:
    """``yield Metadata(asset, {...})`` from a task attaches ``extra`` to the asset's event
    (with ``alias=``, the event is emitted for ``asset`` through that alias)."""

    asset: Asset
    extra: Mapping[str, Any] = field(default_factory=dict)
    alias: AssetAlias | None = None


class AssetTrigger:
    """``schedule=AssetTrigger(a & b, policy="each_event")``: a condition plus how queued
    events fold into runs: ``batch`` (the default, as Airflow), ``each_event`` or
    ``latest_only`` (see :func:`millstream.core.assets.plan_consumption`)."""

    def __init__(self, condition: BaseAsset | Sequence[BaseAsset], policy: str = "batch") -> None:
        if policy not in POLICIES:
            raise _fail(f"AssetTrigger policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.condition = as_condition(condition)
        self.policy = policy

    def to_dict(self) -> dict[str, Any]:
        return {"condition": self.condition.to_condition(), "policy": self.policy}


class AssetOrTimeSchedule:
    """Run on a timetable *and* whenever the asset condition is met."""

    def __init__(self, *, timetable: Any, assets: BaseAsset | Sequence[BaseAsset] | AssetTrigger) -> None:
        if isinstance(timetable, BaseAsset | AssetTrigger | AssetOrTimeSchedule):
            raise _fail("AssetOrTimeSchedule: timetable must be a time schedule, not assets")
        self.timetable = timetable
        self.trigger = assets if isinstance(assets, AssetTrigger) else AssetTrigger(assets)


def as_condition(value: BaseAsset | Sequence[BaseAsset]) -> BaseAsset:
    """``[a, b]`` means all of them, as in Airflow."""
    if isinstance(value, BaseAsset):
        return value
    items = list(value)
    if not items:
        raise _fail("an asset schedule needs at least one asset; schedule=[] lists none")
    for item in items:
        if not isinstance(item, BaseAsset):
            raise _fail(
                f"an asset schedule may list only Asset, AssetAlias and their combinations, got {item!r}"
            )
    return items[0] if len(items) == 1 else AssetAll(*items)


def split_schedule(schedule: Any) -> tuple[Any, AssetTrigger | None]:
    """A ``schedule=`` value -> (its time part, its asset part)."""
    if isinstance(schedule, AssetOrTimeSchedule):
        return schedule.timetable, schedule.trigger
    if isinstance(schedule, AssetTrigger):
        return None, schedule
    if isinstance(schedule, BaseAsset):
        return None, AssetTrigger(schedule)
    if isinstance(schedule, list | tuple) and schedule and all(isinstance(s, BaseAsset) for s in schedule):
        return None, AssetTrigger(schedule)
    if isinstance(schedule, list | tuple):
        raise _fail(
            f"schedule as a list must list assets (schedule=[Asset('a'), Asset('b')]); got {schedule!r}"
        )
    return schedule, None


class FileArrivalWatcher:
    """Emits one event for its asset per new file in ``path`` matching ``pattern``.

    A file is reported once its size and modification time have not changed for
    ``settle_seconds`` (so a half-written file is not picked up), and never again
    afterwards, across scheduler restarts. A relative ``path`` is taken from the DAG
    file's folder; ``~`` and ``$VARS`` are expanded when the DAG file is parsed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        pattern: str = "*",
        settle_seconds: float = 5.0,
        recursive: bool = False,
    ) -> None:
        if not isinstance(path, str | os.PathLike) or not str(path).strip():
            raise _fail("FileArrivalWatcher needs a folder path")
        if not isinstance(settle_seconds, int | float) or settle_seconds < 0:
            raise _fail(f"FileArrivalWatcher settle_seconds must be >= 0, got {settle_seconds!r}")
        if not isinstance(pattern, str) or not pattern:
            raise _fail("FileArrivalWatcher pattern must be a glob such as '*.csv'")
        folder = os.path.expandvars(os.path.expanduser(str(path)))
        if not os.path.isabs(folder):
            filename, _ = caller_location()
            base = os.path.dirname(os.path.abspath(filename)) if filename else os.getcwd()
            folder = os.path.join(base, folder)
        self.path = os.path.normpath(folder)
        self.pattern = pattern
        self.settle_seconds = float(settle_seconds)
        self.recursive = recursive

    def __repr__(self) -> str:
        return f"FileArrivalWatcher({self.path!r}, {self.pattern!r}, settle_seconds={self.settle_seconds})"

    def to_dict(self, asset_name: str) -> dict[str, Any]:
        return {
            "kind": "file_arrival",
            "asset": asset_name,
            "path": self.path,
            "pattern": self.pattern,
            "settle_seconds": float(self.settle_seconds),
            "recursive": self.recursive,
        }


class AssetWatcher:
    """Airflow 3's ``AssetWatcher(name, trigger)``: the trigger runs on the triggerer for as
    long as a DAG uses the asset, and each event it yields is an event of the asset (its
    payload in the event's extra). A trigger that ends is started again."""

    def __init__(self, name: str, trigger: Any) -> None:
        from millstream.sdk.deferral import BaseTrigger, dumps

        if not isinstance(name, str) or not name.strip():
            raise _fail("AssetWatcher needs a name")
        if not isinstance(trigger, BaseTrigger):
            raise _fail(f"AssetWatcher {name!r}: trigger must be a BaseTrigger, got {trigger!r}")
        self.name = name
        self.trigger = trigger
        self.classpath, kwargs = trigger.serialize()
        try:
            self.kwargs = dumps(kwargs)
        except TypeError as e:
            raise _fail(f"AssetWatcher {name!r}: the trigger's serialize() gave {e}") from None

    def __repr__(self) -> str:
        return f"AssetWatcher({self.name!r}, {self.classpath})"

    def to_dict(self, asset_name: str) -> dict[str, Any]:
        return {
            "kind": "trigger",
            "asset": asset_name,
            "name": self.name,
            "classpath": self.classpath,
            "kwargs": self.kwargs,
        }


def outlet_key(value: Any, where: str) -> str:
    """The key an ``outlets=``/``inlets=`` entry is recorded under."""
    if isinstance(value, Asset | AssetAlias):
        return value.key
    raise _fail(f"{where}: outlets and inlets take Asset or AssetAlias objects, got {value!r}")
