"""Deadlines: call someone when a run or a task is not finished by a given time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

REFERENCES = ("logical_date", "run_start")


class DeadlineReference:
    """What a deadline's interval counts from (names as in Airflow 3)."""

    DAGRUN_LOGICAL_DATE = "logical_date"
    DAGRUN_QUEUED_AT = "run_start"
    RUN_START = "run_start"


class DeadlineAlert:
    """``callback(context)`` once, if the run (or task) is not finished ``interval`` after
    ``reference``. The work keeps going: a deadline informs, it does not stop anything."""

    def __init__(
        self,
        *,
        interval: timedelta,
        callback: Callable[[dict[str, Any]], Any],
        reference: str = DeadlineReference.DAGRUN_LOGICAL_DATE,
    ) -> None:
        if reference not in REFERENCES:
            raise ValueError(f"deadline reference must be one of {REFERENCES}, got {reference!r}")
        if not isinstance(interval, timedelta) or interval.total_seconds() < 0:
            raise ValueError(f"deadline interval must be a non-negative timedelta, got {interval!r}")
        if not callable(callback):
            raise TypeError(f"deadline callback must be callable, got {callback!r}")
        self.interval = interval
        self.callback = callback
        self.reference = reference

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "seconds": self.interval.total_seconds()}
