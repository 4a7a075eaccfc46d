"""The triggerer: deferred tasks' triggers on one asyncio event loop.

:class:`TriggerRunner` is the loop, in a thread of its own; :func:`sync` is one turn of a
triggerer against the store (beat, stop what is no longer ours, claim what is free,
record what fired). The embedded default runs it inside the scheduler's process and
turn; ``millstream triggerer`` runs the same turn in processes of its own, several at
once sharing the rows the way schedulers share runs. The loop never touches the store:
its thread only runs triggers and queues what they gave.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from millstream.sdk import deferral
from millstream.store import Store
from millstream.store import triggers as triggers_q
from millstream.worker.runner import HOSTNAME

log = logging.getLogger("millstream.triggerer")

Key = tuple[int | str, str, int]  # (run_pk, task_id, map_index), or an asset watcher's (id, "watcher", -1)


@dataclass(frozen=True)
class Fired:
    key: Key
    event: str | None  # JSON: {"payload": ..., "end": "success" | "failed" | "skipped" | None}
    failure: str | None  # the trigger raised: its traceback
    at: datetime
    last: bool = True  # the trigger is done (false for an asset watcher's events: it goes on)


class TriggerRunner:
    """Runs triggers on an event loop in a daemon thread; safe to call from any thread."""

    def __init__(self, wake: Callable[[], None] = lambda: None) -> None:
        self._wake = wake
        self._loop: asyncio.AbstractEventLoop | None = None  # made on the first submit
        self._thread: threading.Thread | None = None
        self._tasks: dict[Key, asyncio.Task[None]] = {}  # touched only on the loop's thread
        self._fired: queue.SimpleQueue[Fired] = queue.SimpleQueue()
        self.running: set[Key] = set()  # touched only by the caller's thread

    def _started_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="millstream-triggerer", daemon=True
            )
            self._thread.start()
        return self._loop

    def stop(self) -> None:
        """Cancel every trigger (their rows stay claimable) and end the loop's thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._cancel_all(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            self._loop = self._thread = None
            self.running.clear()

    def submit(self, key: Key, classpath: str, kwargs_json: str, *, many: bool = False) -> None:
        """Run a trigger; ``many``: report every event it yields (an asset watcher's),
        not just the first (a deferred task's)."""
        self.running.add(key)
        self._started_loop().call_soon_threadsafe(self._begin, key, classpath, kwargs_json, many)

    def cancel(self, key: Key) -> None:
        self.running.discard(key)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._end, key)

    def drain(self) -> list[Fired]:
        out: list[Fired] = []
        while True:
            try:
                fired = self._fired.get_nowait()
            except queue.Empty:
                return out
            if fired.last:
                self.running.discard(fired.key)
            out.append(fired)

    def has_fired(self) -> bool:
        return not self._fired.empty()

    # -- on the loop's thread ---------------------------------------------------------------

    def _begin(self, key: Key, classpath: str, kwargs_json: str, many: bool) -> None:
        old = self._tasks.pop(key, None)
        if old is not None:
            old.cancel()
        assert self._loop is not None
        self._tasks[key] = self._loop.create_task(self._run(key, classpath, kwargs_json, many))

    def _end(self, key: Key) -> None:
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    async def _cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, key: Key, classpath: str, kwargs_json: str, many: bool) -> None:
        trigger: deferral.BaseTrigger | None = None
        try:
            trigger = deferral.build_trigger(classpath, kwargs_json)
            async for event in trigger.run():
                if not isinstance(event, deferral.TriggerEvent):
                    raise TypeError(f"trigger yielded {event!r}; a trigger must yield TriggerEvent objects")
                self._report(key, event=_event_json(event), last=not many)
                if not many:
                    return
            if many:
                self._report(key)  # ended: neither event nor failure (an asset watcher restarts it)
            else:
                self._report(key, failure=f"trigger {classpath} ended without yielding an event")
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a trigger that raises fails its task, with the traceback
            self._report(key, failure=f"trigger {classpath} failed:\n{traceback.format_exc()}")
        finally:
            self._tasks.pop(key, None)
            if trigger is not None:
                try:
                    await trigger.cleanup()
                except Exception:
                    log.exception("cleanup of trigger %s failed", classpath)

    def _report(
        self, key: Key, *, event: str | None = None, failure: str | None = None, last: bool = True
    ) -> None:
        self._fired.put(Fired(key, event, failure, datetime.now(UTC), last))
        self._wake()


def _event_json(event: deferral.TriggerEvent) -> str:
    end = None
    if isinstance(event, (deferral.TaskSuccessEvent, deferral.TaskFailedEvent, deferral.TaskSkippedEvent)):
        end = event.payload["state"]
        return deferral.dumps({"payload": None, "end": end})
    return deferral.dumps({"payload": event.payload, "end": end})


def sync(
    store: Store,
    runner: TriggerRunner,
    triggerer_id: str,
    now: datetime,
    *,
    capacity: int,
    heartbeat_timeout: float,
    beat: bool = True,
) -> int:
    """One triggerer turn against the store; returns how many triggers it now runs.

    ``beat`` renews the claims (and stops triggers no longer ours); callers do it a few
    times per heartbeat timeout, not every turn: with thousands of triggers waiting, that
    is the one query whose cost grows with them."""
    fired = runner.drain()
    with store.begin() as conn:
        triggers_q.fire_many(
            conn,
            triggerer_id,
            [
                {
                    "run_pk": f.key[0],
                    "task_id": f.key[1],
                    "map_index": f.key[2],
                    "event": f.event,
                    "failure": f.failure,
                    "fired_at": f.at,
                }
                for f in fired
            ],
        )
        if beat:
            ours = triggers_q.beat(conn, triggerer_id, now)
            for key in list(runner.running - ours):
                runner.cancel(key)  # cleared, marked, timed out, or taken over meanwhile
        stale = now - timedelta(seconds=heartbeat_timeout)
        claimed = triggers_q.claim(conn, triggerer_id, now, stale, capacity - len(runner.running), stale=beat)
    for row in claimed:
        runner.submit((row["run_pk"], row["task_id"], row["map_index"]), row["classpath"], row["kwargs"])
    if claimed:
        log.info(
            "triggerer %s took %d trigger(s); running %d", triggerer_id, len(claimed), len(runner.running)
        )
    return len(runner.running)


class Triggerer:
    """``millstream triggerer``: the triggerer turn in a process of its own."""

    def __init__(
        self,
        store: Store,
        *,
        capacity: int,
        heartbeat_timeout: float = 30.0,
        poll_interval: float = 1.0,
        dags_folder: str | None = None,
    ) -> None:
        self.store = store
        self.capacity = capacity
        self.heartbeat_timeout = heartbeat_timeout
        self.poll_interval = poll_interval
        self.id = f"triggerer-{HOSTNAME}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._woken = threading.Event()
        self._stop = threading.Event()
        self.runner = TriggerRunner(self._woken.set)
        if dags_folder and dags_folder not in sys.path:
            sys.path.append(dags_folder)  # trigger classes kept beside the DAG files import

    def stop(self) -> None:
        self._stop.set()
        self._woken.set()

    def run_forever(self) -> None:
        log.info("triggerer %s starting", self.id)
        try:
            next_beat = 0.0
            while not self._stop.is_set():
                try:
                    beat = time.monotonic() >= next_beat
                    sync(
                        self.store,
                        self.runner,
                        self.id,
                        datetime.now(UTC),
                        capacity=self.capacity,
                        heartbeat_timeout=self.heartbeat_timeout,
                        beat=beat,
                    )
                    if beat:
                        next_beat = time.monotonic() + self.heartbeat_timeout / 3
                except Exception:
                    # The database went away: keep the triggers running, beat again soon.
                    log.exception("triggerer turn failed; trying again")
                self._woken.wait(self.poll_interval)
                self._woken.clear()
        finally:
            self.runner.stop()
            log.info("triggerer %s stopped", self.id)
