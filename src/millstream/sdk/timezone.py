"""Airflow's ``timezone`` helpers that DAG files use: aware datetimes, UTC by default."""

from __future__ import annotations

import datetime as dt
from typing import Any

utc = dt.UTC


def datetime(*args: Any, **kwargs: Any) -> dt.datetime:
    """``datetime.datetime`` that is in UTC unless ``tzinfo`` says otherwise."""
    kwargs.setdefault("tzinfo", utc)
    return dt.datetime(*args, **kwargs)


def utcnow() -> dt.datetime:
    return dt.datetime.now(utc)


def make_aware(value: dt.datetime, timezone: dt.tzinfo | None = None) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone or utc)


def convert_to_utc(value: dt.datetime) -> dt.datetime:
    return make_aware(value).astimezone(utc)


def parse(text: str) -> dt.datetime:
    return make_aware(dt.datetime.fromisoformat(text))
