"""``WeekDay``: the ISO day numbers Airflow's weekday operator and sensor compare with."""

from __future__ import annotations

import enum
from collections.abc import Iterable


@enum.unique
class WeekDay(enum.IntEnum):
    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7

    @classmethod
    def get_weekday_number(cls, week_day_str: str) -> WeekDay:
        """The day named ``week_day_str`` in any case ("Sunday", "SUNDAY")."""
        name = week_day_str.upper()
        if name not in cls.__members__:
            raise AttributeError(
                f"Invalid Week Day passed: {week_day_str!r}; use one of {', '.join(cls.__members__)}"
            )
        return cls[name]

    @classmethod
    def convert(cls, day: str | WeekDay) -> int:
        return day if isinstance(day, WeekDay) else cls.get_weekday_number(day)

    @classmethod
    def validate_week_day(cls, week_day: str | WeekDay | Iterable[str | WeekDay]) -> set[int]:
        """The ISO day numbers of a day name, a ``WeekDay``, or an iterable of them."""
        if isinstance(week_day, (str, WeekDay)):
            return {cls.convert(week_day)}
        if not isinstance(week_day, Iterable):
            raise TypeError(
                f"Unsupported Type for week_day parameter: {type(week_day)}. Input should be iterable "
                "type: str, set, list, dict or Weekday enum type"
            )
        return {cls.convert(item) for item in week_day}
