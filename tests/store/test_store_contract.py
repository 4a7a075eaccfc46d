"""One contract for every store backend: in-memory SQLite, SQLite file and PostgreSQL."""

import threading
from datetime import UTC, datetime

import pytest

from millstream.core.model import DagSpec, MapSource, TaskSpec
from millstream.core.states import RunState, TaskState
from millstream.errors import ConflictError, NotFoundError
from millstream.store import dags as dags_q
from millstream.store import results as results_q
from millstream.store import runs as runs_q
from millstream.store import task_instances as ti_q

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
S = TaskState

SPEC = DagSpec(
    "d",
    (
        TaskSpec("list"),
        TaskSpec("proc", upstream=("list",), map_sources=(MapSource("f", task_id="list"),)),
        TaskSpec("sum", upstream=("proc",)),
    ),
    fileloc="/dags/d.py",
)


def make_run(store, run_id="r1"):
    with store.begin() as conn:
        version = dags_q.sync_parsed(conn, [SPEC], now=NOW, paused_on_create=False)["d"]
        pk = runs_q.create_run(
            conn,
            dag_id="d",
            run_id=run_id,
            version_id=version,
            run_type="manual",
            logical_date=NOW,
            interval=(NOW, NOW),
            run_after=NOW,
            conf={"a": 1},
            now=NOW,
        )
        ti_q.create_for_run(conn, pk, SPEC)
    return pk


def test_versions_are_recorded_only_when_the_structure_changes(store):
    with store.begin() as conn:
        v1 = dags_q.sync_parsed(conn, [SPEC], now=NOW, paused_on_create=True)["d"]
        v1b = dags_q.sync_parsed(conn, [SPEC], now=NOW, paused_on_create=True)["d"]
        changed = DagSpec("d", (*SPEC.tasks, TaskSpec("extra")), fileloc="/dags/d.py")
        v2 = dags_q.sync_parsed(conn, [changed], now=NOW, paused_on_create=True)["d"]
    assert v1 == v1b and v2 != v1
    with store.read() as conn:
        assert dags_q.spec_for_version(conn, v1) == SPEC
        assert dags_q.latest_spec(conn, "d") == (v2, changed)
        assert dags_q.get_dag(conn, "d")["is_paused"] is True


def test_run_ids_are_unique_per_dag(store):
    make_run(store)
    with pytest.raises(ConflictError, match="already has a run 'r1'"):
        make_run(store)
    with store.read() as conn:
        with pytest.raises(NotFoundError, match="has no run 'nope'"):
            runs_q.get_run(conn, "d", "nope")
        run = runs_q.get_run(conn, "d", "r1")
    assert run["conf"] == {"a": 1}
    assert run["logical_date"] == NOW and run["logical_date"].tzinfo is not None


def test_expansion_and_bulk_state_changes(store):
    pk = make_run(store)
    with store.begin() as conn:
        ti_q.expand(conn, pk, SPEC, "proc", 12_000, S.SCHEDULED)
        ti_q.set_states(conn, pk, "proc", range(0, 12_000, 2), S.SUCCESS, "done")
    with store.read() as conn:
        states = ti_q.states_of_run(conn, pk)
    proc = [s for t, i, s in states if t == "proc"]
    assert len(proc) == 12_000 and proc.count(S.SUCCESS) == 6_000
    assert ("proc", -1, S.NONE) not in states


def test_conditional_update_refuses_a_stale_writer(store):
    pk = make_run(store)
    with store.begin() as conn:
        assert ti_q.set_attempt(conn, pk, "list", -1, expected=[S.NONE], state=S.QUEUED)
        assert not ti_q.set_attempt(conn, pk, "list", -1, expected=[S.NONE], state=S.RUNNING)
        assert ti_q.get(conn, pk, "list", -1)["state"] == "queued"


def test_results_page_in_map_index_order_with_gaps(store):
    pk = make_run(store)
    rows = [
        {
            "run_pk": pk,
            "task_id": "proc",
            "map_index": i,
            "key": "return_value",
            "value": str(i),
            "length": None,
            "type_name": "int",
        }
        for i in range(2500)
        if i % 7
    ]
    with store.begin() as conn:
        results_q.put_many(conn, rows)
        results_q.put_many(
            conn,
            [
                {
                    "run_pk": pk,
                    "task_id": "list",
                    "map_index": -1,
                    "key": "return_value",
                    "value": "[1,2]",
                    "length": 2,
                    "type_name": "list",
                }
            ],
        )
    with store.read() as conn:
        assert results_q.count(conn, pk, "proc", "return_value") == len(rows)
        got = [int(v) for _, v in results_q.iter_all(conn, pk, "proc", "return_value", batch=300)]
        assert got == [i for i in range(2500) if i % 7]
        assert results_q.nth(conn, pk, "proc", "return_value", 6) == "8"  # 7 is a gap
        assert results_q.outputs_of_run(conn, pk)["list"].length == 2


def test_exactly_one_of_many_racing_claims_wins(shared_store):
    store = shared_store
    pk = make_run(store)
    barrier = threading.Barrier(8)
    wins = []

    def claim():
        barrier.wait()
        with store.begin() as conn:
            if runs_q.set_state(conn, pk, RunState.RUNNING, expected=RunState.QUEUED):
                wins.append(1)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1


def test_import_errors_and_pause(store):
    with store.begin() as conn:
        dags_q.set_import_error(conn, "/dags/bad.py", 3, "SyntaxError: invalid syntax", "tb", NOW)
        dags_q.set_import_error(conn, "/dags/bad.py", 4, "SyntaxError: again", "tb", NOW)
        dags_q.sync_parsed(conn, [SPEC], now=NOW, paused_on_create=False)
        dags_q.set_paused(conn, "d", True)
    with store.read() as conn:
        errs = dags_q.list_import_errors(conn)
        assert [(e["filename"], e["lineno"]) for e in errs] == [("/dags/bad.py", 4)]
        assert dags_q.get_dag(conn, "d")["is_paused"] is True
        with pytest.raises(NotFoundError, match="no DAG with id 'x'"):
            dags_q.get_dag(conn, "x")


def test_sqlite_writers_queue_on_a_file_lock(tmp_path):
    """While one write transaction is open, another process cannot take the write gate;
    it is free again after the commit (see store._WriteGate for why it exists)."""
    import fcntl
    import os

    from millstream.store import Store

    store = Store(f"sqlite:///{tmp_path / 'ms.db'}")
    store.migrate()

    def gate_free() -> bool:
        fd = os.open(str(tmp_path / "ms.db-writelock"), os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    with store.begin():
        assert not gate_free()
    assert gate_free()
    with store.read():
        assert gate_free()  # readers never wait for it
    store.dispose()
