"""Secrets kept out of what Millstream shows: rendered template fields, and (with the
connections issue) logs and API answers.

Two rules, as in Airflow: a value under a sensitive name (``password``, ``api_key``,
``token``, …) is shown as ``***``; and a value registered with :func:`mask_secret` is
replaced by ``***`` wherever it appears inside any text. Registering is per process:
a worker registers what it read (a connection's password, say) before it renders.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"

#: Airflow 3.3's default sensitive names; a name containing one of them is masked.
SENSITIVE_NAMES = frozenset(
    {
        "access_key",
        "access_token",
        "api_key",
        "apikey",
        "auth_header",
        "authorization",
        "bearer",
        "connection_string",
        "dsn",
        "passphrase",
        "passwd",
        "password",
        "private_key",
        "proxy",
        "proxy_password",
        "proxies",
        "secret",
        "service_account",
        "service_key",
        "token",
        "keyfile_dict",
        "webhook_url",
    }
)

# Shorter values would mask ordinary words and numbers all over the output.
_MIN_SECRET = 5
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def is_sensitive(name: str | None) -> bool:
    if not name:
        return False
    low = name.lower()
    return any(word in low for word in SENSITIVE_NAMES)


def mask_secret(secret: Any, name: str | None = None) -> None:
    """Never show ``secret`` (a string, or every string inside a dict or list) again."""
    global _pattern
    if isinstance(secret, str):
        if len(secret) >= _MIN_SECRET and secret not in _secrets and secret != "airflow":
            _secrets.add(secret)
            _pattern = None
    elif isinstance(secret, Mapping):
        for k, v in secret.items():
            mask_secret(v, str(k))
    elif isinstance(secret, Iterable) and not isinstance(secret, bytes):
        for v in secret:
            mask_secret(v, name)


def _compiled() -> re.Pattern[str] | None:
    global _pattern
    if _pattern is None and _secrets:
        # Longest first, so a secret containing another is masked whole.
        _pattern = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)))
    return _pattern


def redact(value: Any, name: str | None = None) -> Any:
    """``value`` with sensitive names and registered secrets masked (a new object)."""
    if is_sensitive(name) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        pattern = _compiled()
        return pattern.sub(MASK, value) if pattern is not None else value
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def redact_names(value: Any, name: str | None = None) -> Any:
    """``value`` with only values under sensitive names masked: for showing a connection's
    extra to an operator, where every registered secret would hide ordinary settings."""
    if is_sensitive(name) and value not in (None, ""):
        return MASK
    if isinstance(value, Mapping):
        return {k: redact_names(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_names(v) for v in value]
    return value


def mask_text(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` (for log lines)."""
    pattern = _compiled()
    return pattern.sub(MASK, text) if pattern is not None else text


class MaskingWriter:
    """A text stream that masks registered secrets in what is written through it: a task's
    log, so a password read from a Connection never lands in the log file. Secrets
    registered mid-task apply from then on."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(mask_text(text) if _secrets else text)
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def forget_secrets() -> None:
    """For tests: a fresh process's state."""
    global _pattern
    _secrets.clear()
    _pattern = None
