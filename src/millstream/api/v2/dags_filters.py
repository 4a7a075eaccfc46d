"""Airflow 3.3's filter semantics for the DAG endpoints, on Python strings (DAGs, tags and
import errors are the few-hundred-row kinds, filtered in Python as ``/api/v1`` does):

- ``*_pattern``: SQL ``ILIKE '%term%'``, with ``%`` and ``_`` as wildcards, ``|`` OR, ``~`` all;
- ``*_prefix_pattern``: Airflow's case-sensitive prefix range (trailing punctuation dropped);
- datetime ranges as SQL compares them (nothing is in a range when the value is NULL).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from millstream.api.v2.common import split_terms

_RUN, _ONE = object(), object()  # ``%`` and ``_``


def _tokens(pattern: str) -> list[object]:
    """``ILIKE``'s pattern: ``%`` any run, ``_`` one character, ``\\`` escapes the next one."""
    out: list[object] = []
    chars = iter(pattern.lower())
    for c in chars:
        if c == "\\":
            out.append(next(chars, "\\"))
        else:
            out.append(_RUN if c == "%" else _ONE if c == "_" else c)
    return out


def _like(tokens: list[object], text: str) -> bool:
    """Wildcard matching in at most len(text) * len(pattern) steps (a regex could backtrack
    without bound on a user's pattern such as ``%a%a%a%a%a%b``)."""
    s = text.lower()
    i = j = 0
    star, mark = -1, 0
    while i < len(s):
        if j < len(tokens) and tokens[j] is not _RUN and (tokens[j] is _ONE or tokens[j] == s[i]):
            i, j = i + 1, j + 1
        elif j < len(tokens) and tokens[j] is _RUN:
            star, mark, j = j, i, j + 1
        elif star != -1:
            j, mark = star + 1, mark + 1
            i = mark
        else:
            return False
    while j < len(tokens) and tokens[j] is _RUN:
        j += 1
    return j == len(tokens)


def search(value: str | None) -> Callable[[str], bool] | None:
    """Airflow's ``*_pattern`` filter (None when not given)."""
    if value is None:
        return None
    patterns = [_tokens(f"%{t}%") for t in split_terms("%" if value == "~" else value)]
    return lambda s: any(_like(p, s) for p in patterns)


def _upper(term: str) -> str | None:
    """The exclusive upper bound of the prefix range: the last alphanumeric character bumped
    by one, dropping characters whose successor is not alphanumeric (Airflow's rule, as a
    loop rather than its recursion, so that no pattern is too long for it)."""
    while term:
        while term and not term[-1].isalnum():
            term = term[:-1]
        if not term:
            return None
        last = ord(term[-1])
        bumped = chr(last + 1) if last < 0x10FFFF else ""
        if bumped.isalnum():
            return term[:-1] + bumped
        term = term[:-1]
    return None


def prefix(value: str | None) -> Callable[[str], bool] | None:
    """Airflow's ``*_prefix_pattern``: the range ``[term, term-with-last-char+1)`` after
    trailing punctuation is stripped (so ``test_`` matches what starts with ``test``)."""
    if value is None:
        return None

    def one(term: str) -> Callable[[str], bool]:
        lower = term.rstrip()
        while lower and not lower[-1].isalnum():
            lower = lower[:-1]
        upper = _upper(term)
        if not lower:
            return lambda s: True
        return lambda s: s >= lower and (upper is None or s < upper)

    tests = [one(t) for t in split_terms("" if value == "~" else value)]
    return lambda s: any(t(s) for t in tests)


def _utc(d: datetime | None) -> datetime | None:
    return d.replace(tzinfo=UTC) if d is not None and d.tzinfo is None else d


def in_range(value: datetime | None, gte: Any, gt: Any, lte: Any, lt: Any) -> bool:
    bounds = [(b, op) for b, op in ((gte, "ge"), (gt, "gt"), (lte, "le"), (lt, "lt")) if b is not None]
    if not bounds:
        return True
    if value is None:
        return False  # SQL: a comparison with NULL is never true
    ops: dict[str, Callable[[datetime, datetime], bool]] = {
        "ge": lambda a, b: a >= b,
        "gt": lambda a, b: a > b,
        "le": lambda a, b: a <= b,
        "lt": lambda a, b: a < b,
    }
    return all(ops[op](value, _utc(b)) for b, op in bounds)  # type: ignore[arg-type]
