"""Asset watchers: triggers whose events are asset events.

Both kinds run as triggers on one event loop in a thread of the scheduler process: an
``AssetWatcher``'s own trigger, and a ``FileArrivalWatcher``, which is a
:class:`~millstream.sdk.standard.file_arrival.FileArrivalTrigger` started with the files
already reported. What they yield goes to the scheduler loop, which records a settled
file's "reported" and its asset event in one transaction: what was reported is in the
store, so a restarted scheduler never reports a file twice (a half-settled file just
settles again after a restart). A watcher that fails is started again after a pause.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from millstream.scheduler.triggerer import Key, TriggerRunner
from millstream.sdk import deferral
from millstream.sdk.standard import file_arrival
from millstream.sdk.standard.file_arrival import FileArrivalTrigger, SettleTracker, scan_interval
from millstream.store import Store
from millstream.store import assets as assets_q
from millstream.store import dags as dags_q
from millstream.worker.runner import HOSTNAME

log = logging.getLogger("millstream.watchers")


@dataclass(frozen=True)
class WatchSpec:
    asset: str
    path: str
    pattern: str = "*"
    settle_seconds: float = 5.0
    recursive: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WatchSpec:
        return cls(d["asset"], d["path"], d["pattern"], float(d["settle_seconds"]), bool(d.get("recursive")))

    @property
    def id(self) -> str:
        """Stable across restarts: the same asset, folder and pattern are the same watcher."""
        text = "\0".join((self.asset, self.path, self.pattern, str(self.recursive)))
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    @property
    def scan_interval(self) -> float:
        return scan_interval(self.settle_seconds)


def scan(spec: WatchSpec) -> dict[str, tuple[int, float]]:
    """The files a watcher's folder holds now: path -> (size, mtime)."""
    return file_arrival.scan(spec.path, spec.pattern, spec.recursive)


__all__ = ["SettleTracker", "WatchSpec", "WatcherThread", "record_arrivals", "scan"]


@dataclass(frozen=True)
class TriggerWatch:
    """An ``AssetWatcher``: a trigger whose every event is an event of ``asset``."""

    asset: str
    name: str
    classpath: str
    kwargs: str

    @property
    def id(self) -> str:
        text = "\0".join((self.asset, self.name, self.classpath, self.kwargs))
        return hashlib.sha256(text.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Arrival:
    watcher: WatchSpec
    path: str
    size: int
    mtime: float


@dataclass(frozen=True)
class TriggerArrival:
    """A watcher's trigger fired: ``payload`` goes into the asset event's extra."""

    watcher: TriggerWatch
    payload: Any


#: A watcher trigger that raised is started again after this long (and says why in the log).
RESTART_AFTER_FAILURE = 30.0


class WatcherThread:
    """Runs every watcher the active DAGs declare; settled files go to ``arrivals``."""

    def __init__(
        self,
        store: Store,
        wake: Callable[[], None],
        refresh_interval: float = 5.0,
        *,
        scheduler_id: str | None = None,
        heartbeat_timeout: float = 30.0,
    ) -> None:
        self.store = store
        self.wake = wake
        self.refresh_interval = refresh_interval
        self.scheduler_id = scheduler_id
        self.heartbeat_timeout = heartbeat_timeout
        self.arrivals: queue.Queue[Arrival | TriggerArrival] = queue.Queue()
        # AssetWatchers' triggers, on an event loop of their own (see scheduler/triggerer.py).
        self.triggers = TriggerRunner(self._woken)
        self._trigger_watches: dict[Key, TriggerWatch] = {}
        self._file_watches: dict[Key, WatchSpec] = {}
        self._restart_at: dict[Key, float] = {}
        self._stop = threading.Event()
        self._kick = threading.Event()  # set by a stop or a trigger that fired
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="millstream-asset-watchers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.triggers.stop()

    def _woken(self) -> None:
        self._kick.set()

    def specs(self) -> list[WatchSpec]:
        return [w for w in self._all_specs() if isinstance(w, WatchSpec)]

    def _all_specs(self) -> list[WatchSpec | TriggerWatch]:
        out: dict[WatchSpec | TriggerWatch, None] = {}
        with self.store.read() as conn:
            for row in dags_q.list_dags(conn):
                if not row["latest_version_id"]:
                    continue
                spec = dags_q.spec_for_version(conn, row["latest_version_id"])
                for a in spec.assets:
                    for w in a.get("watchers", ()):
                        if w.get("kind") == "trigger":
                            out[TriggerWatch(w["asset"], w["name"], w["classpath"], w["kwargs"])] = None
                        else:
                            out[WatchSpec.from_dict(w)] = None
        return list(out)

    def _leads(self) -> bool:
        """One scheduler runs the AssetWatchers' triggers (two would each report every
        event): the live one whose id sorts first."""
        if self.scheduler_id is None:
            return True
        from millstream.store import schedulers as schedulers_q

        now = datetime.now(UTC)
        with self.store.read() as conn:
            live = schedulers_q.live(conn, now, self.heartbeat_timeout, HOSTNAME) | {self.scheduler_id}
        return min(live) == self.scheduler_id

    def _refresh_triggers(self, watches: list[TriggerWatch]) -> None:
        wanted = {(w.id, "watcher", -1): w for w in watches} if self._leads() else {}
        for key in [k for k in self._trigger_watches if k not in wanted]:
            self.triggers.cancel(key)
            del self._trigger_watches[key]
            self._restart_at.pop(key, None)
        for key, w in wanted.items():
            if key not in self._trigger_watches:
                log.info("asset %s: starting watcher %s (%s)", w.asset, w.name, w.classpath)
                self._trigger_watches[key] = w
                self.triggers.submit(key, w.classpath, w.kwargs, many=True)

    def _collect_fired(self, now: float) -> int:
        n = 0
        for fired in self.triggers.drain():
            spec = self._file_watches.get(fired.key)
            if spec is not None:
                if fired.event is not None:
                    got = deferral.loads(fired.event)["payload"]
                    self.arrivals.put(Arrival(spec, got["path"], got["size"], got["mtime"]))
                    n += 1
                elif fired.last:
                    log.error("watcher of %s (asset %s) stopped; starting it again in %gs\n%s", spec.path,
                              spec.asset, RESTART_AFTER_FAILURE, fired.failure or "")  # fmt: skip
                    self._restart_at[fired.key] = now + RESTART_AFTER_FAILURE
                continue
            w = self._trigger_watches.get(fired.key)
            if w is None:
                continue
            if fired.failure is not None:
                log.error("asset %s: watcher %s failed; starting it again in %gs\n%s", w.asset, w.name,
                          RESTART_AFTER_FAILURE, fired.failure)  # fmt: skip
                self._restart_at[fired.key] = now + RESTART_AFTER_FAILURE
                continue
            if fired.event is not None:
                self.arrivals.put(TriggerArrival(w, deferral.loads(fired.event)["payload"]))
                n += 1
            if fired.last:  # the trigger ended after its event: an asset watcher keeps watching
                self.triggers.submit(fired.key, w.classpath, w.kwargs, many=True)
        for key, at in list(self._restart_at.items()):
            if now < at:
                continue
            del self._restart_at[key]
            if key in self._trigger_watches:
                w = self._trigger_watches[key]
                self.triggers.submit(key, w.classpath, w.kwargs, many=True)
            elif key in self._file_watches:
                self._start_file_watch(key, self._file_watches[key])
        return n

    def refresh(self) -> None:
        every = self._all_specs()
        self._refresh_triggers([w for w in every if isinstance(w, TriggerWatch)])
        specs = {(w.id, "file_arrival", -1): w for w in every if isinstance(w, WatchSpec)}
        for key in [k for k in self._file_watches if k not in specs]:
            self.triggers.cancel(key)
            del self._file_watches[key]
        for key, spec in specs.items():
            if key not in self._file_watches:
                self._file_watches[key] = spec
                self._start_file_watch(key, spec)
                log.info("watching %s for %s (asset %s)", spec.path, spec.pattern, spec.asset)
                if not Path(spec.path).is_dir():
                    log.warning(
                        "watched folder %s (asset %s) does not exist yet; files are reported once it does",
                        spec.path,
                        spec.asset,
                    )

    def _start_file_watch(self, key: Key, spec: WatchSpec) -> None:
        """A FileArrivalWatcher runs as a trigger, started with what was already reported."""
        with self.store.read() as conn:
            reported = assets_q.reported_paths(conn, spec.id)
        classpath, kwargs = FileArrivalTrigger(
            spec.path, spec.pattern, spec.settle_seconds, spec.recursive, reported
        ).serialize()
        self.triggers.submit(key, classpath, deferral.dumps(kwargs), many=True)

    def _run(self) -> None:
        next_refresh = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_refresh:
                    self.refresh()
                    next_refresh = now + self.refresh_interval
                if self._collect_fired(now):
                    self.wake()
            except Exception:
                log.exception("asset watchers failed; trying again")
            waits = [next_refresh, *self._restart_at.values()]
            self._kick.wait(max(0.05, min(waits) - time.monotonic()))
            self._kick.clear()


def record_arrivals(store: Store, arrivals: list[Arrival | TriggerArrival], now: Any) -> int:
    """Record settled files (each file once, ever) and watcher triggers' events as asset
    events; returns how many."""
    n = 0
    with store.begin() as conn:
        for a in arrivals:
            if isinstance(a, TriggerArrival):
                assets_q.record_event(
                    conn,
                    asset_name=a.watcher.asset,
                    now=now,
                    source="watcher",
                    extra={"watcher": a.watcher.name, "payload": a.payload},
                )
                n += 1
                continue
            try:
                with conn.begin_nested():  # one bad arrival must not hold up the others
                    if not assets_q.mark_reported(conn, a.watcher.id, a.path, a.size, a.mtime, now):
                        continue
                    event_id = assets_q.record_event(
                        conn,
                        asset_name=a.watcher.asset,
                        now=now,
                        source="watcher",
                        extra={"path": a.path, "size": a.size, "mtime": a.mtime},
                    )
                    assets_q.set_watcher_event(conn, a.watcher.id, a.path, event_id)
                    n += 1
            except Exception:
                log.exception("could not record %s for asset %s; skipping it", a.path, a.watcher.asset)
    return n
