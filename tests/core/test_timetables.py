"""Schedule math, with Airflow 3.3.2's observed behaviour as the reference."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millstream.core.timetables import (
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    DeltaTriggerTimetable,
    RunInfo,
    ScheduleError,
    validate_cron,
)

NOW = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
START = datetime(2025, 1, 1, tzinfo=UTC)


def test_daily_without_catchup_runs_the_latest_tick_at_once():
    # Airflow 3.3.2 at 2026-11-26 10:30: a run for 2026-11-26 00:00, created immediately.
    info = CronTriggerTimetable("@daily").next_run(last=None, now=NOW, start=START, end=None, catchup=False)
    tick = datetime(2026, 11, 26, tzinfo=UTC)
    assert info == RunInfo(tick, tick, tick, tick)


def test_daily_with_catchup_starts_at_the_start_date():
    info = CronTriggerTimetable("@daily").next_run(last=None, now=NOW, start=START, end=None, catchup=True)
    assert info.logical_date == START and info.interval_start == info.interval_end == START
    nxt = CronTriggerTimetable("@daily").next_run(last=info, now=NOW, start=START, end=None, catchup=True)
    assert nxt.logical_date == START + timedelta(days=1)


def test_cron_data_intervals_cover_the_last_complete_interval():
    info = CronDataIntervalTimetable("@daily").next_run(
        last=None, now=NOW, start=START, end=None, catchup=False
    )
    assert info.logical_date == datetime(2026, 11, 25, tzinfo=UTC)
    assert (info.interval_start, info.interval_end) == (
        datetime(2026, 11, 25, tzinfo=UTC),
        datetime(2026, 11, 26, tzinfo=UTC),
    )


def test_timedelta_without_catchup_runs_now_then_every_delta():
    tt = DeltaTriggerTimetable(6 * 3600)
    first = tt.next_run(last=None, now=NOW, start=START, end=None, catchup=False)
    assert first.logical_date == NOW and first.interval_start == first.interval_end == NOW
    assert tt.next_run(
        last=first, now=NOW, start=START, end=None, catchup=False
    ).logical_date == NOW + timedelta(hours=6)


def test_end_date_stops_the_schedule():
    tt = CronTriggerTimetable("@daily")
    last = tt.next_run(last=None, now=NOW, start=START, end=START, catchup=True)
    assert last.logical_date == START
    assert tt.next_run(last=last, now=NOW, start=START, end=START, catchup=True) is None


def test_timezone_aware_ticks_follow_local_midnight_across_dst():
    tt = CronTriggerTimetable("0 0 * * *", "Europe/Amsterdam")
    start = datetime(2026, 3, 27, tzinfo=UTC)
    ticks, last = [], None
    for _ in range(4):
        last = tt.next_run(
            last=last, now=datetime(2027, 1, 1, tzinfo=UTC), start=start, end=None, catchup=True
        )
        ticks.append(last.logical_date)
    # Local midnight is 23:00 UTC before the change on 29 March and 22:00 UTC after it.
    assert [t.isoformat() for t in ticks] == [
        "2026-03-27T23:00:00+00:00",
        "2026-03-28T23:00:00+00:00",
        "2026-03-29T22:00:00+00:00",
        "2026-03-30T22:00:00+00:00",
    ]


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("61 * * * *", "invalid minute field '61'"),
        ("* * 32 * *", "invalid day of month field '32'"),
        ("* * * * * *", "has 6 fields"),
        ("@fortnightly", "unknown schedule preset"),
    ],
)
def test_bad_cron_names_the_field(expr, message):
    with pytest.raises(ScheduleError, match=message):
        validate_cron(expr)


@given(
    st.sampled_from(["0 * * * *", "30 2 * * *", "0 0 * * 1", "15 */6 * * *", "0 0 1 * *"]),
    st.sampled_from(["UTC", "Europe/Amsterdam", "America/New_York", "Australia/Sydney"]),
    st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2028, 1, 1)),
)
def test_ticks_strictly_increase_and_never_repeat(expr, tz, start):
    tt = CronTriggerTimetable(expr, tz)
    start = start.replace(tzinfo=UTC)
    last, seen = None, []
    for _ in range(30):
        last = tt.next_run(
            last=last, now=datetime(2030, 1, 1, tzinfo=UTC), start=start, end=None, catchup=True
        )
        seen.append(last.logical_date)
    assert all(a < b for a, b in zip(seen, seen[1:]))


def test_runs_between_covers_the_range_inclusively():
    from millstream.core.timetables import runs_between

    infos = runs_between(
        CronTriggerTimetable("@daily"), datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 31, tzinfo=UTC)
    )
    assert len(infos) == 31 and infos[0].logical_date.day == 1 and infos[-1].logical_date.day == 31
    monthly = runs_between(
        CronDataIntervalTimetable("@monthly"),
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2025, 12, 31, tzinfo=UTC),
    )
    # Month ends: each interval runs to the first of the next month, whatever the month's length.
    assert [(i.interval_end - i.interval_start).days for i in monthly] == [
        31,
        28,
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ]


@given(
    st.sampled_from(
        ["Europe/Amsterdam", "America/New_York", "Australia/Sydney", "America/Sao_Paulo", "Asia/Tehran"]
    ),
    st.sampled_from(["30 2 * * *", "0 0 * * *", "15 1 * * *", "0 3 * * *"]),
    st.dates(min_value=datetime(2024, 1, 1).date(), max_value=datetime(2027, 12, 1).date()),
)
def test_daily_schedules_tick_once_per_local_day_across_dst(tz, expr, day):
    from zoneinfo import ZoneInfo

    from millstream.core.timetables import runs_between

    zone = ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    infos = runs_between(CronTriggerTimetable(expr, tz), start, start + timedelta(days=40))
    local_days = [i.logical_date.astimezone(zone).date() for i in infos]
    # Neither skipped (a day without a run) nor duplicated (a day with two), even when the
    # clock jumps over or repeats the scheduled local time.
    assert len(local_days) == len(set(local_days))
    assert all((b - a).days == 1 for a, b in zip(local_days, local_days[1:]))


def test_a_wall_clock_time_that_occurs_twice_runs_once():
    from millstream.core.timetables import runs_between

    # 02:30 happens twice in Amsterdam on 27 October 2024 (clocks go back at 03:00).
    tt = CronTriggerTimetable("30 2 * * *", "Europe/Amsterdam")
    infos = runs_between(tt, datetime(2024, 10, 26, tzinfo=UTC), datetime(2024, 10, 29, tzinfo=UTC))
    assert [i.logical_date.isoformat() for i in infos] == [
        "2024-10-26T00:30:00+00:00",
        "2024-10-27T00:30:00+00:00",
        "2024-10-28T01:30:00+00:00",
    ]
    # Hourly with data intervals: the interval that contains the repeated hour spans two
    # real hours, so every moment is covered exactly once.
    hourly = runs_between(
        CronDataIntervalTimetable("0 * * * *", "Europe/Amsterdam"),
        datetime(2024, 10, 26, 22, tzinfo=UTC),
        datetime(2024, 10, 27, 4, tzinfo=UTC),
    )
    for a, b in zip(hourly, hourly[1:]):
        assert a.interval_end == b.interval_start


def test_cron_trigger_with_an_interval_covers_the_time_before_the_tick():
    from millstream import DAG

    tt = CronTriggerTimetable("0 6 * * *", timezone="UTC", interval=timedelta(days=1))
    info = tt.next_run(last=None, now=NOW, start=START, end=None, catchup=True)
    assert info.logical_date == datetime(2025, 1, 1, 6, tzinfo=UTC)
    assert (
        info.interval_start == datetime(2024, 12, 31, 6, tzinfo=UTC)
        and info.interval_end == info.logical_date
    )
    spec = DAG("d", schedule=tt, start_date=START).to_spec()
    from millstream.core.timetables import from_spec

    assert from_spec(spec.timetable).next_run(last=None, now=NOW, start=START, end=None, catchup=True) == info
