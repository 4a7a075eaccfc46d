"""Recording parsed DAG files in the store: which file owns a dag_id that two files define.

The rule: the file that already owns a dag_id in the store keeps it (a new file never
hijacks a running DAG); among files new to it, the first in the DAG folder's file order
(as ``load_dags`` reports it). The other file gets an import error naming both paths, and
takes over on its next parse once the owner is deleted or stops defining the DAG.
"""

from __future__ import annotations

from millstream.core.model import DagSpec, TaskSpec
from millstream.scheduler.dagsync import record_parsed
from millstream.scheduler.parsing import Parsed
from millstream.store import dags as dags_q


def spec(dag_id: str, fileloc: str, task_id: str = "t") -> DagSpec:
    return DagSpec(dag_id=dag_id, tasks=(TaskSpec(task_id),), fileloc=fileloc)


def parsed(fileloc: str, *dag_ids: str, task_id: str = "t") -> Parsed:
    return Parsed(fileloc, [spec(d, fileloc, task_id) for d in dag_ids])


def state(store) -> tuple[dict[str, str], dict[str, str]]:
    """({active dag_id: fileloc}, {file with an import error: message})."""
    with store.read() as conn:
        dags = {r["dag_id"]: r["fileloc"] for r in dags_q.list_dags(conn)}
        errors = {e["filename"]: e["message"] for e in dags_q.list_import_errors(conn)}
    return dags, errors


def record(store, *files: Parsed, **kw):
    return record_parsed(store, list(files), paused_on_creation=False, **kw)


def test_the_first_file_in_folder_order_keeps_a_new_dag_id_and_the_second_gets_an_import_error(store):
    # Given in the wrong order on purpose: the folder's order decides, not the batch's.
    record(store, parsed("/dags/b.py", "shared", "only_b"), parsed("/dags/a.py", "shared"))
    dags, errors = state(store)
    assert dags == {"shared": "/dags/a.py", "only_b": "/dags/b.py"}  # b's other DAG still loads
    assert list(errors) == ["/dags/b.py"]
    assert "'shared'" in errors["/dags/b.py"]
    assert "/dags/a.py" in errors["/dags/b.py"] and "/dags/b.py" in errors["/dags/b.py"]
    with store.read() as conn:
        _, kept = dags_q.latest_spec(conn, "shared")
    assert kept.fileloc == "/dags/a.py"


def test_the_file_that_owns_a_dag_id_keeps_it_against_a_new_file_sorted_before_it(store):
    record(store, parsed("/dags/z.py", "shared"))
    record(store, parsed("/dags/a.py", "shared", task_id="hijack"))
    dags, errors = state(store)
    assert dags == {"shared": "/dags/z.py"}
    assert list(errors) == ["/dags/a.py"] and "/dags/z.py" in errors["/dags/a.py"]
    with store.read() as conn:
        _, kept = dags_q.latest_spec(conn, "shared")
    assert [t.task_id for t in kept.tasks] == ["t"]
    # Parsing the owner again (it changed) does not hand the DAG over either.
    record(store, parsed("/dags/z.py", "shared", task_id="t2"), parsed("/dags/a.py", "shared"))
    dags, errors = state(store)
    assert dags == {"shared": "/dags/z.py"} and list(errors) == ["/dags/a.py"]


def test_an_owner_that_stops_defining_the_dag_hands_it_to_the_other_file_on_its_next_parse(store):
    record(store, parsed("/dags/a.py", "shared"), parsed("/dags/b.py", "shared", task_id="from_b"))
    outcome = record(store, parsed("/dags/a.py", "something_else"))
    # b did not change, so nothing parsed it again: the caller is told to.
    assert outcome.reparse == ["/dags/b.py"]
    record(store, parsed("/dags/b.py", "shared", task_id="from_b"))
    dags, errors = state(store)
    assert dags == {"shared": "/dags/b.py", "something_else": "/dags/a.py"}
    assert errors == {}
    with store.read() as conn:
        _, now_from_b = dags_q.latest_spec(conn, "shared")
    assert [t.task_id for t in now_from_b.tasks] == ["from_b"]


def test_a_deleted_owner_hands_the_dag_to_the_other_file(store):
    record(
        store,
        parsed("/dags/a.py", "shared"),
        parsed("/dags/b.py", "shared"),
        files=["/dags/a.py", "/dags/b.py"],
        folder="/dags",
    )
    outcome = record(store, files=["/dags/b.py"], folder="/dags")  # a.py deleted, nothing changed
    assert outcome.reparse == ["/dags/b.py"]
    record(store, parsed("/dags/b.py", "shared"), files=["/dags/b.py"], folder="/dags")
    assert state(store) == ({"shared": "/dags/b.py"}, {})


def test_a_new_file_takes_over_at_once_when_the_owner_is_deleted_in_the_same_parse(store):
    record(store, parsed("/dags/a.py", "shared"), files=["/dags/a.py"], folder="/dags")
    outcome = record(store, parsed("/dags/b.py", "shared"), files=["/dags/b.py"], folder="/dags")
    assert state(store) == ({"shared": "/dags/b.py"}, {}) and outcome.reparse == []


def test_an_owner_whose_file_fails_to_import_keeps_its_dag(store):
    from millstream.sdk.loader import ImportErrorInfo

    record(store, parsed("/dags/b.py", "shared"))
    broken = Parsed("/dags/b.py", [], ImportErrorInfo("/dags/b.py", 1, "SyntaxError: invalid syntax"))
    record(store, broken, parsed("/dags/a.py", "shared"))
    dags, errors = state(store)
    assert dags == {"shared": "/dags/b.py"}  # its last good version keeps running
    assert errors["/dags/b.py"].startswith("SyntaxError") and "/dags/b.py" in errors["/dags/a.py"]


def test_a_folder_is_not_a_prefix_of_its_neighbour(store):
    record(store, parsed("/dags2/x.py", "other"), files=["/dags2/x.py"], folder="/dags2")
    record(store, parsed("/dags/a.py", "mine"), files=["/dags/a.py"], folder="/dags")
    assert state(store)[0] == {"other": "/dags2/x.py", "mine": "/dags/a.py"}
