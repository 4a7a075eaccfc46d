"""Files that arrive unpredictably: every CSV dropped into ``$MILLSTREAM_HOME/incoming``
triggers a run that loads exactly the new files, one mapped instance per file.

No polling task: the scheduler's file watcher emits one ``incoming_csv`` event per file
once its size has been stable for two seconds (a half-copied file waits), and never
reports the same file twice, even across restarts. Try it::

    cp orders.csv $MILLSTREAM_HOME/incoming/
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from millstream import Asset, FileArrivalWatcher, dag, task

INCOMING = Path(os.environ.get("MILLSTREAM_HOME", "~/millstream")).expanduser() / "incoming"

incoming_csv = Asset(
    "incoming_csv",
    uri=f"file://{INCOMING}",
    watchers=[FileArrivalWatcher(path=str(INCOMING), pattern="*.csv", settle_seconds=2)],
)
loaded_rows = Asset("loaded_rows")


@dag(schedule=incoming_csv, tags=["assets", "example"])
def ingest_arrivals():
    @task
    def new_files(triggering_asset_events=None) -> list[str]:
        """The files this run was triggered by: every one that arrived since the last run."""
        return [event.extra["path"] for event in triggering_asset_events[incoming_csv]]

    @task(map_index_template="{{ path.rsplit('/', 1)[-1] }}")
    def load(path: str) -> dict:
        with open(path, newline="") as f:
            rows = sum(1 for _ in csv.DictReader(f))
        print(f"{path}: {rows} rows")
        return {"file": Path(path).name, "rows": rows}

    @task(outlets=[loaded_rows])
    def summarize(loaded, outlet_events=None) -> int:
        loaded = list(loaded)
        total = sum(x["rows"] for x in loaded)
        outlet_events[loaded_rows].extra = {"files": [x["file"] for x in loaded], "rows": total}
        print(f"loaded {total} rows from {len(loaded)} new file(s)")
        return total

    summarize(load.expand(path=new_files()))


ingest_arrivals()
