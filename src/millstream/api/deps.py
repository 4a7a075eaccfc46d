"""Shared pieces of the route modules: the store, paging, converting rows to bodies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request

from millstream.api.schemas import MAX_INT, Page, RunOut, TaskInstanceOut
from millstream.settings import Settings
from millstream.store import Store

T = TypeVar("T")


def get_store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def changed(request: Request) -> None:
    """Wake a scheduler on this host at once (others find the change on their next poll)."""
    from millstream.scheduler.wakeup import notify

    notify(get_settings(request).home)


@dataclass(frozen=True)
class Paging:
    limit: int
    offset: int

    def window(self, rows: Sequence[T]) -> Sequence[T]:
        """This page of a list filtered in Python (the few-hundred-row kinds: DAGs, pools)."""
        return rows[self.offset : self.offset + self.limit]

    def of(self, items: list[Any], total: int) -> Page[Any]:
        return Page(items=items, total=total, limit=self.limit, offset=self.offset)


def paging(
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page.")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INT, description="Items to skip.")] = 0,
) -> Paging:
    return Paging(limit, offset)


def value(member: StrEnum | str | None) -> str | None:
    """The stored text of an enum filter (route functions are also called with plain text)."""
    return None if member is None else str(member)


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PagingDep = Annotated[Paging, Depends(paging)]


def run_out(r: Mapping[str, Any]) -> RunOut:
    start, end = r["start_date"], r["end_date"]
    duration = (end - start).total_seconds() if start and end else None
    return RunOut.model_validate({**r, "conf": dict(r["conf"] or {}), "duration": duration})


def ti_out(r: Mapping[str, Any], run_id: str) -> TaskInstanceOut:
    return TaskInstanceOut.model_validate({**r, "run_id": run_id})
