"""The directory watcher: settle time, exactly-once reporting across restarts, and the
CSV example that maps over exactly the new files."""

import shutil
from pathlib import Path

from millstream.scheduler.watchers import SettleTracker, WatchSpec, scan
from millstream.store import assets as assets_q
from millstream.store import runs as runs_q

from .conftest import wait_for

EXAMPLE = Path(__file__).parents[2] / "examples" / "csv_arrivals.py"


def test_a_file_is_reported_only_after_its_size_is_stable_for_the_settle_time():
    t = SettleTracker(settle_seconds=5)
    assert t.observe({"/in/a.csv": (10, 1.0)}, now=0) == []
    assert t.observe({"/in/a.csv": (20, 2.0)}, now=4) == []  # still being written
    assert t.observe({"/in/a.csv": (20, 2.0)}, now=8.9) == []  # stable for 4.9 s only
    assert t.observe({"/in/a.csv": (20, 2.0)}, now=9) == [("/in/a.csv", 20, 2.0)]
    assert t.observe({"/in/a.csv": (20, 2.0)}, now=20) == []  # never twice


def test_a_file_deleted_before_it_settles_is_never_reported():
    t = SettleTracker(settle_seconds=1)
    t.observe({"/in/tmp.csv": (1, 1.0)}, now=0)
    assert t.observe({}, now=2) == []
    assert t.observe({"/in/tmp.csv": (1, 1.0)}, now=3) == []  # seen anew: settles again
    assert t.observe({"/in/tmp.csv": (1, 1.0)}, now=4) == [("/in/tmp.csv", 1, 1.0)]


def test_files_reported_before_a_restart_are_not_reported_again():
    t = SettleTracker(settle_seconds=0, reported={"/in/old.csv"})
    assert t.observe({"/in/old.csv": (5, 1.0), "/in/new.csv": (6, 1.0)}, now=0) == [("/in/new.csv", 6, 1.0)]


def test_scan_matches_the_pattern_and_skips_folders(tmp_path):
    (tmp_path / "a.csv").write_text("x")
    (tmp_path / "b.txt").write_text("y")
    (tmp_path / "sub.csv").mkdir()
    (tmp_path / "sub.csv" / "c.csv").write_text("z")
    spec = WatchSpec("x", str(tmp_path), "*.csv", 1.0)
    assert sorted(scan(spec)) == [str(tmp_path / "a.csv")]
    deep = WatchSpec("x", str(tmp_path), "*.csv", 1.0, recursive=True)
    assert sorted(scan(deep)) == [str(tmp_path / "a.csv"), str(tmp_path / "sub.csv" / "c.csv")]
    assert scan(WatchSpec("x", str(tmp_path / "missing"), "*", 1.0)) == {}


def write_csv(path: Path, rows: int) -> None:
    tmp = path.with_suffix(".part")  # written under another name, then renamed, as uploaders do
    tmp.write_text("id,amount\n" + "".join(f"{i},{i * 10}\n" for i in range(rows)))
    tmp.rename(path)


def loaded_files(harness):
    """(run_id, {file: rows}) of each finished ingest run, oldest first."""
    import json

    out = []
    with harness.store.read() as conn:
        for run in reversed(runs_q.list_runs(conn, "ingest_arrivals", limit=100)):
            if run["state"] != "success":
                continue
            from millstream.store import results as results_q

            loaded = {}
            for idx in range(100):
                text = results_q.get_one(conn, run["id"], "load", idx, "return_value")
                if text is None:
                    break
                item = json.loads(text)
                loaded[item["file"]] = item["rows"]
            out.append((run["run_id"], loaded))
    return out


def test_csv_example_maps_over_exactly_the_new_files_across_a_restart(harness, tmp_path, monkeypatch):
    monkeypatch.setenv("MILLSTREAM_HOME", str(tmp_path))
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    source = EXAMPLE.read_text().replace("settle_seconds=2", "settle_seconds=0.3")
    harness.write_dag("csv_arrivals.py", source)
    write_csv(incoming / "orders_1.csv", 3)
    write_csv(incoming / "orders_2.csv", 5)
    (incoming / "notes.txt").write_text("not a csv")
    harness.start()
    harness.wait_parsed("ingest_arrivals")
    wait_for(lambda: sum(len(x) for _, x in loaded_files(harness)) == 2, 60, "the first two files")
    assert {f: n for _, x in loaded_files(harness) for f, n in x.items()} == {
        "orders_1.csv": 3,
        "orders_2.csv": 5,
    }
    harness.stop()

    # Restart: nothing already reported comes back; only the new file is loaded.
    harness.store = type(harness.store)(harness.url)
    write_csv(incoming / "orders_3.csv", 7)
    harness.start()
    wait_for(lambda: "orders_3.csv" in str(loaded_files(harness)), 60, "the third file")
    runs = loaded_files(harness)
    assert runs[-1][1] == {"orders_3.csv": 7}
    assert sorted(f for _, x in runs for f in x) == ["orders_1.csv", "orders_2.csv", "orders_3.csv"]
    with harness.store.read() as conn:
        events = assets_q.events_of(conn, "incoming_csv", limit=None)
        assert sorted(Path(e["extra"]["path"]).name for e in events) == [
            "orders_1.csv",
            "orders_2.csv",
            "orders_3.csv",
        ]
        assert all(e["source"] == "watcher" for e in events)
        assert assets_q.count_events(conn, "loaded_rows") == len(runs)


def test_a_file_still_being_written_waits_for_the_settle_time(harness, tmp_path):
    """End to end with a real folder: appending keeps a file unreported; once it stops
    changing it is reported exactly once."""
    import threading

    incoming = tmp_path / "drop"
    incoming.mkdir()
    harness.write_dag(
        "watch.py",
        f"""
from millstream import Asset, FileArrivalWatcher, dag, task
drop = Asset("drop", watchers=[FileArrivalWatcher({str(incoming)!r}, "*.bin", settle_seconds=0.5)])

@dag(schedule=drop)
def on_drop():
    @task
    def noop():
        pass
    noop()

on_drop()
""",
    )
    harness.start()
    harness.wait_parsed("on_drop")
    big = incoming / "big.bin"
    stop_writing = threading.Event()
    written = threading.Event()

    def writer():
        with big.open("ab") as f:
            while not stop_writing.is_set():
                f.write(b"x" * 1024)
                f.flush()
                written.set()
                stop_writing.wait(0.05)

    t = threading.Thread(target=writer)
    t.start()
    try:
        written.wait(5)
        # While bytes keep arriving (for well over the settle time), no event.
        wait_for(lambda: big.stat().st_size > 40 * 1024, 30, "the writer to write for a while")
        with harness.store.read() as conn:
            assert assets_q.count_events(conn, "drop") == 0
    finally:
        stop_writing.set()
        t.join()
    size = big.stat().st_size

    def one_event():
        with harness.store.read() as conn:
            return assets_q.count_events(conn, "drop") == 1

    wait_for(one_event, 30, "the settled file's event")
    with harness.store.read() as conn:
        (event,) = assets_q.events_of(conn, "drop")
    assert event["extra"]["size"] == size
    shutil.rmtree(incoming)
