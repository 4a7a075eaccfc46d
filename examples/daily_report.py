"""A daily extract >> transform >> load that writes one output file per data interval.

Re-running an interval rewrites the same file (idempotent), which is what makes
backfilling safe: `millstream backfill create --dag-id daily_report --from-date 2025-01-01
--to-date 2025-01-31` fills in January, and running it again changes nothing.
"""

import json
import os
from datetime import datetime
from pathlib import Path

from millstream import CronDataIntervalTimetable, dag, task

OUT = Path(os.environ.get("MILLSTREAM_HOME", Path.home() / "millstream")) / "reports"


@dag(
    schedule=CronDataIntervalTimetable("0 0 * * *"),  # each run covers the day that just ended
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "backfill"],
)
def daily_report():
    @task
    def extract(data_interval_start=None, data_interval_end=None):
        # Pretend source: the rows of exactly this interval, so a rerun sees the same input.
        day = data_interval_start.date()
        return [{"day": day.isoformat(), "order": i, "amount": (day.day * 7 + i) % 50} for i in range(10)]

    @task
    def transform(rows):
        return {"day": rows[0]["day"], "orders": len(rows), "revenue": sum(r["amount"] for r in rows)}

    @task
    def load(summary, ds=None):
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"report_{ds}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, sort_keys=True))
        tmp.replace(path)  # atomic: a rerun replaces the file, never half-writes it
        return str(path)

    load(transform(extract()))


daily_report()
