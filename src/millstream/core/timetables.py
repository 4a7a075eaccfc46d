"""Schedule math: when the next run of a DAG is due and which data interval it covers.

Pure date arithmetic: "now" is always an argument. Semantics follow Airflow 3.3 (checked
by running it): a cron string, preset or ``timedelta`` fires at its tick (logical date =
the tick, empty data interval), unless ``MILLSTREAM_CRON_DATA_INTERVALS`` asks for
Airflow 2's "run after the interval ends, covering it".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

_CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")


class ScheduleError(ValueError):
    """A schedule that cannot be understood; the message names the offending part."""


@dataclass(frozen=True)
class RunInfo:
    """A run the timetable wants: its logical date, data interval and when it is due."""

    logical_date: datetime
    interval_start: datetime
    interval_end: datetime
    run_after: datetime


def validate_cron(expr: str) -> str:
    """Return the 5-field cron expression for ``expr`` or raise naming the bad field."""
    expr = PRESETS.get(expr.strip(), expr.strip())
    if expr.startswith("@"):
        known = ", ".join([*sorted(PRESETS), "@once", "@continuous"])
        raise ScheduleError(f"unknown schedule preset {expr!r}; use one of {known}")
    parts = expr.split()
    if len(parts) != 5:
        raise ScheduleError(
            f"cron expression {expr!r} has {len(parts)} fields; expected 5 "
            "(minute hour day-of-month month day-of-week)"
        )
    for name, part in zip(_CRON_FIELDS, parts, strict=True):
        probe = ["*"] * 5
        probe[_CRON_FIELDS.index(name)] = part
        if not croniter.is_valid(" ".join(probe)):
            raise ScheduleError(f"cron expression {expr!r}: invalid {name} field {part!r}")
    if not croniter.is_valid(expr):
        raise ScheduleError(f"cron expression {expr!r} is not valid")
    return expr


def _parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class Timetable:
    """Base: a timetable with no automatic runs (``schedule=None``)."""

    summary = "None"
    periodic = False

    def next_run(
        self,
        *,
        last: RunInfo | None,
        now: datetime,
        start: datetime | None,
        end: datetime | None,
        catchup: bool,
    ) -> RunInfo | None:
        return None

    def manual_info(self, now: datetime) -> RunInfo:
        """The logical date and interval of a run triggered by hand at ``now``."""
        return RunInfo(now, now, now, now)


class OnceTimetable(Timetable):
    summary = "@once"

    def next_run(self, *, last, now, start, end, catchup):  # type: ignore[no-untyped-def]
        if last is not None:
            return None
        at = start or now
        return RunInfo(at, at, at, at)


class ContinuousTimetable(Timetable):
    """A new run as soon as the previous one finishes (the scheduler limits it to one)."""

    summary = "@continuous"

    def next_run(self, *, last, now, start, end, catchup):  # type: ignore[no-untyped-def]
        at = max(now, start) if start else now
        if end and at > end:
            return None
        return RunInfo(at, at, at, at)


class _CronBase(Timetable):
    periodic = True

    def __init__(self, cron: str, timezone: str = "UTC") -> None:
        self.expr = validate_cron(cron)
        self.tz = ZoneInfo(timezone)
        self.summary = cron

    def _ticks_after(self, t: datetime) -> datetime:
        # croniter works in the zone of its start time, which makes DST-correct ticks. When
        # the clocks go back, a wall-clock time occurs twice and croniter yields both: the
        # second is the same cron slot again, so it is skipped (no duplicate run; with data
        # intervals, the interval before simply spans the extra hour).
        local = t.astimezone(self.tz)
        it = croniter(self.expr, local)
        nxt: datetime = it.get_next(datetime)
        while nxt.replace(tzinfo=None) == local.replace(tzinfo=None):
            nxt = it.get_next(datetime)
        return nxt.astimezone(UTC)

    def _tick_at_or_after(self, t: datetime) -> datetime:
        return self._ticks_after(t - timedelta(microseconds=1))

    def _tick_at_or_before(self, t: datetime) -> datetime:
        it = croniter(self.expr, (t + timedelta(microseconds=1)).astimezone(self.tz))
        prev: datetime = it.get_prev(datetime)
        return prev.astimezone(UTC)


class CronTriggerTimetable(_CronBase):
    """Run at each cron tick; the logical date is the tick (Airflow 3's default).

    ``interval`` gives each run the data interval that ends at its tick (empty by default).
    """

    def __init__(self, cron: str, timezone: str = "UTC", *, interval: timedelta = timedelta(0)) -> None:
        super().__init__(cron, timezone)
        self.interval = interval

    def next_run(self, *, last, now, start, end, catchup):  # type: ignore[no-untyped-def]
        if last is not None:
            tick = self._ticks_after(last.logical_date)
        elif start is not None:
            tick = self._tick_at_or_after(start)
        else:
            tick = self._tick_at_or_after(now)
        if not catchup:
            # Missed ticks are not replayed; the latest one that has passed still runs,
            # at once (Airflow 3.3 does the same).
            tick = max(tick, self._tick_at_or_before(now))
        if end is not None and tick > end:
            return None
        return RunInfo(tick, tick - self.interval, tick, tick)


class CronDataIntervalTimetable(_CronBase):
    """Run after each interval between two ticks ends (Airflow 2's cron semantics)."""

    def next_run(self, *, last, now, start, end, catchup):  # type: ignore[no-untyped-def]
        if last is not None:
            begin = last.interval_end
        elif start is not None:
            begin = self._tick_at_or_after(start)
        else:
            begin = self._tick_at_or_before(now)
        if not catchup:
            latest_end = self._tick_at_or_before(now)
            latest_begin = self._tick_at_or_before(latest_end - timedelta(microseconds=1))
            begin = max(begin, latest_begin)
        finish = self._ticks_after(begin)
        if end is not None and begin > end:
            return None
        return RunInfo(begin, begin, finish, finish)

    def manual_info(self, now: datetime) -> RunInfo:
        finish = self._tick_at_or_before(now)
        begin = self._tick_at_or_before(finish - timedelta(microseconds=1))
        return RunInfo(now, begin, finish, now)


class _DeltaBase(Timetable):
    periodic = True

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ScheduleError(f"a timedelta schedule must be positive, got {seconds} s")
        self.delta = timedelta(seconds=seconds)
        self.summary = str(self.delta)


class DeltaTriggerTimetable(_DeltaBase):
    """Every ``delta`` from the start date; the logical date is the trigger time and the
    data interval is empty (Airflow 3's default for a ``timedelta`` schedule)."""

    def next_run(self, *, last, now, start, end, catchup):  # type: ignore[no-untyped-def]
        if last is not None:
            at = last.logical_date + self.delta
        elif start is not None:
            at = start
        else:
            at = now
        if not catchup and at < now:
            at = now  # missed triggers are not replayed: run once, now
        if end is not None and at > end:
            return None
        return RunInfo(at, at, at, at)


class DeltaTimetable(_DeltaBase):
    """Every ``delta``, covering the interval that just ended (Airflow 2's semantics)."""

    def next_run(self, *, last, now, start, end, catchup):  # type: ignore[no-untyped-def]
        if last is not None:
            begin = last.interval_end
        elif start is not None:
            begin = start
        else:
            begin = now - self.delta
        if not catchup and begin + self.delta < now:
            behind = (now - begin) // self.delta  # whole intervals missed
            begin = begin + (behind - 1) * self.delta if behind >= 1 else begin
        if end is not None and begin > end:
            return None
        return RunInfo(begin, begin, begin + self.delta, begin + self.delta)

    def manual_info(self, now: datetime) -> RunInfo:
        return RunInfo(now, now - self.delta, now, now)


def from_spec(spec: Mapping[str, Any]) -> Timetable:
    """Rebuild a timetable from its serialized form in a :class:`DagSpec`."""
    kind = spec.get("type", "none")
    if kind == "none":
        return Timetable()
    if kind == "once":
        return OnceTimetable()
    if kind == "continuous":
        return ContinuousTimetable()
    if kind == "cron":
        return CronTriggerTimetable(
            spec["expr"], spec.get("tz", "UTC"), interval=timedelta(seconds=spec.get("interval", 0))
        )
    if kind == "cron_interval":
        return CronDataIntervalTimetable(spec["expr"], spec.get("tz", "UTC"))
    if kind == "delta":
        return DeltaTriggerTimetable(float(spec["seconds"]))
    if kind == "delta_interval":
        return DeltaTimetable(float(spec["seconds"]))
    raise ScheduleError(f"unknown timetable type {kind!r}")


def parse_dates(spec_start: str | None, spec_end: str | None) -> tuple[datetime | None, datetime | None]:
    return _parse_dt(spec_start), _parse_dt(spec_end)


def runs_between(
    timetable: Timetable, start: datetime, end: datetime, limit: int | None = None
) -> list[RunInfo]:
    """Every run the timetable has with a logical date in [start, end], oldest first
    (what a backfill over that range covers); with ``limit``, at most that many."""
    if not timetable.periodic:
        return []
    out: list[RunInfo] = []
    last: RunInfo | None = None
    # "now" far ahead, so every interval counts as due (capped where datetimes end).
    far = min(end, datetime.max.replace(tzinfo=end.tzinfo) - timedelta(days=366 * 100)) + timedelta(
        days=366 * 100
    )
    while limit is None or len(out) < limit:
        info = timetable.next_run(last=last, now=far, start=start, end=end, catchup=True)
        if info is None or info.logical_date > end:
            return out
        if info.logical_date >= start:
            out.append(info)
        last = info
    return out
