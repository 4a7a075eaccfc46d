"""Who a task's mail goes to: Airflow's ``email``, ``email_on_failure``, ``email_on_retry``
(sending is the worker's: :mod:`millstream.worker.mail`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The callback kind -> the task argument that switches its mail on (both default to true).
MAIL_FLAGS = {"on_failure_callback": "email_on_failure", "on_retry_callback": "email_on_retry"}


def recipients(value: Any) -> list[str]:
    """Airflow accepts a string (comma or semicolon separated) or a list of addresses."""
    if not value:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        out.extend(a.strip() for a in str(item).replace(";", ",").split(",") if a.strip())
    return out


def wanted(config: Mapping[str, Any], kind: str) -> list[str]:
    """Who gets mail for this outcome (``kind``: a callback kind), if anyone."""
    flag = MAIL_FLAGS.get(kind)
    if flag is None or not config.get(flag, True):
        return []
    return recipients(config.get("email"))
