"""The Celery executor: task instances run on Celery workers on any number of machines.

The scheduler sends each attempt to a Celery queue (the task's ``queue=``, else the
default). A worker (``millstream celery worker``) runs it with the same worker code as
the local executor and reports Started and Finished through the store (the
``attempt_report`` table), then publishes a wake-up on Redis so that the scheduler reads
the report at once. While an attempt runs, its worker renews a lease
(``attempt_lease``); an attempt whose lease runs out is given up and retried, as with the
local executor. Messages are acknowledged when a worker takes them: an attempt whose
worker dies is not redelivered by the broker but retried by the scheduler, with a new try
number that fences off anything the lost attempt might still report.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from millstream.store import Store
from millstream.store import attempts as attempts_q
from millstream.store import task_instances as ti_q
from millstream.worker import stopping
from millstream.worker.item import AttemptResult, Event, Finished, Started, WorkItem
from millstream.worker.logformat import ids

log = logging.getLogger("millstream.celery")

TASK_NAME = "millstream.run_attempt"
WAKE_CHANNEL = "millstream:attempt-reports"


def make_app(broker_url: str, default_queue: str = "default") -> Any:
    from celery import Celery

    app = Celery("millstream", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=False,  # a lost attempt is retried by the scheduler, not redelivered
        worker_prefetch_multiplier=1,
        task_default_queue=default_queue,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_ignore_result=True,
    )
    app.task(name=TASK_NAME, bind=False)(_run_remote)
    return app


# -- work items on the wire (JSON, so that the broker never carries pickles) ---------------------


def item_to_json(item: WorkItem) -> dict[str, Any]:
    def enc(v: Any) -> Any:
        if isinstance(v, datetime):
            return {"__dt__": v.isoformat()}
        if isinstance(v, tuple):
            return {"__tuple__": [enc(x) for x in v]}
        return v

    return {f.name: enc(getattr(item, f.name)) for f in dataclasses.fields(item)}


def item_from_json(data: dict[str, Any]) -> WorkItem:
    def dec(v: Any) -> Any:
        if isinstance(v, dict) and "__dt__" in v:
            return datetime.fromisoformat(v["__dt__"])
        if isinstance(v, dict) and "__tuple__" in v:
            return tuple(dec(x) for x in v["__tuple__"])
        return v

    return WorkItem(**{k: dec(v) for k, v in data.items()})


def task_id_of(item: WorkItem) -> str:
    """The Celery task id of an attempt: derived from it, so any scheduler can revoke it."""
    run_pk, task_id, map_index = item.key
    return f"millstream-{run_pk}-{task_id}-{map_index}-{item.try_number}"


# -- the worker side -------------------------------------------------------------------------


class _WorkerState:
    """One per worker process: a store, a result reader and warm DAG modules."""

    def __init__(self) -> None:
        from millstream.settings import Settings
        from millstream.worker.dagcache import DagCache
        from millstream.worker.results import ResultReader

        settings = Settings.load()
        self.store = Store(settings.database_url)
        self.reader = ResultReader(self.store)
        self.dags = DagCache()
        self.lease_timeout = settings.lease_timeout
        self.redis = _redis(settings.broker_url)


_state: _WorkerState | None = None


def _redis(url: str) -> Any:
    if not url.startswith(("redis://", "rediss://")):
        return None  # RabbitMQ: the scheduler polls the reports instead
    import redis

    return redis.Redis.from_url(url)


def _publish(client: Any) -> None:
    if client is not None:
        try:
            client.publish(WAKE_CHANNEL, b"1")
        except Exception:
            log.warning("could not publish a wake-up on Redis", exc_info=True)


def _run_remote(payload: dict[str, Any]) -> None:
    """The Celery task: run one attempt and report it through the store."""
    from millstream.worker.runner import HOSTNAME, run_attempt

    global _state
    if _state is None:
        _state = _WorkerState()
    st = _state
    item = item_from_json(payload)
    pid = os.getpid()
    now = datetime.now(UTC)
    with st.store.begin() as conn:
        # Checked and claimed under the instance's row lock: a scheduler deciding whether
        # to send it again (after taking the run over) holds the same lock and sees this
        # lease, or this check sees its decision. Exactly one of them runs the task.
        current = ti_q.attempt_of(conn, item.key, lock=True)
        if current == ("queued", item.try_number):
            attempts_q.renew_lease(conn, item.key, item.try_number, HOSTNAME, pid, now)
            attempts_q.report(
                conn, item.key, item.try_number, "started", Started(item, now, pid, HOSTNAME), now
            )
    if current != ("queued", item.try_number):
        # Sent again under a newer try (a scheduler took the run over), cleared or marked
        # meanwhile: this message is out of date and must not run the task.
        log.warning(
            "dropping %s: the instance is %s at try %s now",
            item.describe(),
            *(current or ("gone", "-")),
            extra=ids(item),
        )
        return
    _publish(st.redis)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(max(0.5, st.lease_timeout / 3)):
            try:
                with st.store.begin() as conn:
                    attempts_q.renew_lease(conn, item.key, item.try_number, HOSTNAME, pid, datetime.now(UTC))
            except Exception:
                log.warning("lease renewal failed for %s", item.describe(), exc_info=True, extra=ids(item))

    beater = threading.Thread(target=beat, name="millstream-lease", daemon=True)
    beater.start()
    try:
        # A revoke (the run marked, stopped or adopted) sends SIGTERM: on_kill, then exit.
        with stopping.stop_on(signal.SIGTERM):
            result = run_attempt(
                item, lambda f, d: st.dags.resolve_version(f, d, item.dag_version_id, st.store), st.reader
            )
        _ship_log(item)  # while the lease is still renewed: a slow copy must not lose the attempt
    finally:
        stop.set()
        beater.join(5)
    result.pid, result.hostname = pid, HOSTNAME
    end = datetime.now(UTC)
    with st.store.begin() as conn:
        attempts_q.report(conn, item.key, item.try_number, "finished", Finished(result), end)
        attempts_q.drop_lease(conn, item.key, item.try_number)
    _publish(st.redis)


def _ship_log(item: WorkItem) -> None:
    """The log stays on this worker's disk; a copy goes to the object store, where the API
    (on another host) reads it. Best effort: a failed copy costs the copy, not the attempt."""
    if not item.result_store_url:
        return
    from millstream.store import objects

    url = objects.log_url(
        item.result_store_url, item.dag_id, item.run_pk, item.task_id, item.map_index, item.try_number
    )
    try:
        objects.copy_file(item.log_path, url)
    except Exception:
        log.warning(
            "could not copy the log of %s to %s", item.describe(), url, exc_info=True, extra=ids(item)
        )


# -- the scheduler side ----------------------------------------------------------------------


@dataclasses.dataclass
class _Flight:
    item: WorkItem
    celery_id: str | None = None
    started: bool = False
    since: float = dataclasses.field(default_factory=time.monotonic)  # when we began following it


class CeleryExecutor:
    """Sends attempts to Celery and turns the workers' reports back into events."""

    #: The cluster queues what it cannot run yet; pools and per-DAG limits still apply.
    slots = 1024
    #: Attempts survive a scheduler restart on Celery: recovery adopts them instead of
    #: counting them as interrupted.
    adopts_attempts = True

    def __init__(
        self,
        store: Store,
        broker_url: str,
        *,
        default_queue: str = "default",
        lease_timeout: float = 30.0,
        poll_interval: float = 0.5,
    ) -> None:
        self.store = store
        self.broker_url = broker_url
        self.default_queue = default_queue
        self.lease_timeout = lease_timeout
        self.poll_interval = poll_interval
        self._flight: dict[tuple[int, str, int], _Flight] = {}
        self._handed: list[int] = []  # reports handed to the scheduler, not yet applied
        self._ack: list[int] = []  # reports the scheduler applied: deleted at the next call
        self._next_cleanup = 0.0
        self._next_lease_check = 0.0
        self._woken = threading.Event()
        self.app: Any = None
        self._redis: Any = None
        self._pubsub: Any = None

    def start(self) -> None:
        self.app = make_app(self.broker_url, self.default_queue)
        self._redis = _redis(self.broker_url)
        if self._redis is not None:
            self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            self._pubsub.subscribe(WAKE_CHANNEL)

    def submit(self, item: WorkItem) -> None:
        limits: dict[str, float] = {}
        if item.execution_timeout:
            # Soft limit: raised inside the task, which fails (and is retried) normally.
            limits = {"soft_time_limit": item.execution_timeout, "time_limit": item.execution_timeout + 30}
        celery_id = task_id_of(item)
        self.app.send_task(
            TASK_NAME,
            args=[item_to_json(item)],
            queue=item.queue or self.default_queue,
            task_id=celery_id,
            **limits,
        )
        self._flight[item.key] = _Flight(item, celery_id)

    def adopt(self, item: WorkItem, *, running: bool) -> None:
        """Track an attempt sent before this scheduler took the run over."""
        self._flight[item.key] = _Flight(item, task_id_of(item), started=running)

    def forget(self, run_pk: int) -> None:
        """Stop following a run's attempts (another scheduler owns the run now and reads
        its reports); the attempts themselves go on."""
        for key in [k for k in self._flight if k[0] == run_pk]:
            del self._flight[key]

    def in_flight(self) -> int:
        return len(self._flight)

    def events(self, timeout: float) -> list[Event]:
        self._acknowledge()
        deadline = time.monotonic() + timeout
        while True:
            out = self._read_reports() + self._check_leases()
            if out or time.monotonic() >= deadline or self._woken.is_set():
                self._woken.clear()
                return out
            self._wait(min(self.poll_interval, deadline - time.monotonic()))

    def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self._pubsub is None:
            self._woken.wait(seconds)
            return
        self._pubsub.get_message(timeout=seconds)

    def _read_reports(self) -> list[Event]:
        if not self._flight:
            return []
        with self.store.read() as conn:
            rows = attempts_q.pending_reports(
                conn, (k[0] for k in self._flight), skip=self._handed + self._ack
            )
        out: list[Event] = []
        for report_id, event in rows:
            item = event.item if isinstance(event, Started) else event.result.item
            flight = self._flight.get(item.key)
            if flight is None:
                continue  # not an attempt of ours (any more): whoever follows it reads it
            if flight.item.try_number != item.try_number:
                self._ack.append(report_id)  # on an attempt given up: nothing to apply
                continue
            self._handed.append(report_id)
            if isinstance(event, Started):
                flight.started = True
            else:
                del self._flight[item.key]
            out.append(event)
        return out

    def applied(self) -> None:
        """The scheduler committed every event handed out so far: their reports may go.
        (Until then they stay in the store, so a scheduler dying in between reads them
        again after its restart instead of losing them.)"""
        self._ack.extend(self._handed)
        self._handed = []

    def _acknowledge(self) -> None:
        """Delete the reports of applied events."""
        cleanup = time.monotonic() >= self._next_cleanup
        if self._ack or cleanup:
            ids, self._ack = self._ack, []
            with self.store.begin() as conn:
                attempts_q.delete_reports(conn, ids)
                if cleanup:
                    self._next_cleanup = time.monotonic() + 3600
                    attempts_q.delete_old_reports(conn, datetime.now(UTC) - timedelta(days=1))

    def _check_leases(self) -> list[Event]:
        now_mono = time.monotonic()
        if now_mono < self._next_lease_check or not self._flight:
            return []
        self._next_lease_check = now_mono + 1.0
        started = {k: f for k, f in self._flight.items() if f.started}
        if not started:
            return []
        with self.store.read() as conn:
            leases = attempts_q.leases(conn, (k[0] for k in started))
        now = datetime.now(UTC)
        out: list[Event] = []
        for key, flight in started.items():
            lease = leases.get(key)
            if lease is None and now_mono - flight.since > 2 * self.lease_timeout:
                # Followed for a while with neither a lease nor a report: nothing will
                # ever report on it (a report lost with a crashed scheduler).
                lease = (flight.item.try_number, now - timedelta(seconds=now_mono - flight.since), "?", 0)
            if lease is None or lease[0] != flight.item.try_number:
                continue  # finished (its report is on the way) or not renewed yet
            silent = (now - lease[1]).total_seconds()
            if silent > self.lease_timeout:
                reason = f"lost: no heartbeat from {lease[2]} pid {lease[3]} for {silent:.1f}s"
                log.warning("%s: %s", flight.item.describe(), reason, extra=ids(flight.item))
                del self._flight[key]
                self._revoke(flight)
                out.append(
                    Finished(
                        AttemptResult(
                            item=flight.item, state="failed", started_at=now, ended_at=now, error=reason
                        )
                    )
                )
        return out

    def _revoke(self, flight: _Flight) -> None:
        if flight.celery_id is not None:
            try:
                # SIGTERM: the attempt's on_kill runs, then its process exits (stopping.stop_on).
                self.app.control.revoke(flight.celery_id, terminate=True, signal="SIGTERM")
            except Exception:
                log.warning(
                    "could not revoke %s", flight.item.describe(), exc_info=True, extra=ids(flight.item)
                )

    def cancel(self, key: tuple[int, str, int], reason: str = "its run was stopped") -> None:
        flight = self._flight.pop(key, None)
        if flight is not None:
            log.warning("stopping %s: %s", flight.item.describe(), reason, extra=ids(flight.item))
            self._revoke(flight)

    def wake(self) -> None:
        self._woken.set()
        _publish(self._redis)

    def shutdown(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()
        if self._redis is not None:
            self._redis.close()


def worker_main(queues: list[str], concurrency: int, broker_url: str, default_queue: str) -> None:
    """`millstream celery worker`: a Celery worker for Millstream's attempts."""
    import socket
    import uuid

    from celery import signals

    from millstream.worker import logformat, tracing

    # A pool process exits without atexit handlers: send its queued spans first.
    signals.worker_process_shutdown.connect(lambda **_: tracing.flush(), weak=False)
    app = make_app(broker_url, default_queue)
    app.worker_main(
        [
            *(["--quiet"] if logformat.json_logs() else []),  # no banner: every line is a JSON log record
            "worker",
            "--loglevel=INFO",
            f"--queues={','.join(queues)}",
            f"--concurrency={concurrency}",
            f"--hostname=millstream-{uuid.uuid4().hex[:6]}@{socket.gethostname()}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


def status(broker_url: str, default_queue: str, timeout: float = 2.0) -> list[dict[str, Any]]:
    """Workers that answer, with their queues and concurrency."""
    app = make_app(broker_url, default_queue)
    inspect = app.control.inspect(timeout=timeout)
    queues = inspect.active_queues() or {}
    stats = inspect.stats() or {}
    active = inspect.active() or {}
    out = []
    for name in sorted(set(queues) | set(stats)):
        pool = (stats.get(name) or {}).get("pool", {})
        out.append(
            {
                "worker": name,
                "queues": sorted(q["name"] for q in queues.get(name, [])),
                "concurrency": pool.get("max-concurrency"),
                "active": len(active.get(name, [])),
            }
        )
    return out


def queue_lengths(broker_url: str, queues: list[str], timeout: float = 2.0) -> dict[str, int]:
    """Messages waiting in each Celery queue (Redis ``LLEN`` or RabbitMQ's passive declare,
    through kombu): what ``/metrics`` reports as the queues' depth. A queue the broker does
    not know yet is empty."""
    from kombu import Connection
    from kombu.exceptions import ChannelError

    out: dict[str, int] = {}
    with Connection(broker_url, connect_timeout=timeout, transport_options={"max_retries": 0}) as conn:
        conn.ensure_connection(max_retries=1)
        for name in queues:
            channel = conn.channel()  # a failed passive declare closes an AMQP channel
            try:
                out[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except ChannelError:
                out[name] = 0
            except Exception as e:
                if "NOT_FOUND" not in str(e) and "404" not in str(e):
                    raise
                out[name] = 0
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: BLE001 - the broker may have closed it already
                    pass
    return out
