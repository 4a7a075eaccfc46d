"""One page of any query, with the total the query would give without the page."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Connection


def page(conn: Connection, query: sa.Select, limit: int, offset: int) -> tuple[list[sa.RowMapping], int]:
    """The rows ``offset .. offset+limit`` of ``query`` (which must be ordered) and its row count."""
    total = conn.execute(sa.select(sa.func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    rows = list(conn.execute(query.limit(limit).offset(offset)).mappings())
    return rows, int(total)
