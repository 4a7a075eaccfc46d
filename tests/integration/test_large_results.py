"""Results bigger than the inline limit live in the object store, read lazily."""

import json
from pathlib import Path

from millstream.store import results as results_q
from millstream.store import runs as runs_q
from millstream.store.tables import task_result

BIG = """
from millstream import dag, task

@dag(schedule=None)
def big():
    @task
    def make():
        return [f"row-{i:06d}-" + "x" * 40 for i in range(5000)]  # about 250 KB of JSON

    @task
    def head(rows):
        return rows[:2]

    @task
    def shout(row, ti=None):
        # Instance 0 returns about 100 KB (object store), instance 1 about 1 KB (database).
        return row.upper() * (2000 if ti.map_index == 0 else 20)

    @task
    def count(all_rows, shouted):
        shouted = list(shouted)  # the lazy fan-in, reading one value from the object store
        return {"rows": len(all_rows), "shouted": len(shouted), "sizes": [len(s) for s in shouted]}

    rows = make()
    first = head(rows)
    count(rows, shout.expand(row=first))

big()
"""


def test_a_large_result_is_stored_by_reference_and_read_back(harness, tmp_path):
    harness.write_dag("big.py", BIG)
    harness.start()
    run_id = harness.trigger("big")
    assert harness.wait_run("big", run_id) == "success"
    with harness.store.read() as conn:
        run_pk = runs_q.get_run(conn, "big", run_id)["id"]
        rows = {
            (r.task_id, r.map_index): r
            for r in conn.execute(task_result.select().where(task_result.c.run_pk == run_pk))
        }
        assert json.loads(results_q.get_one(conn, run_pk, "count", -1, "return_value")) == {
            "rows": 5000,
            "shouted": 2,
            "sizes": [len("row-000000-" + "x" * 40) * 2000, len("row-000001-" + "x" * 40) * 20],
        }
        big_value = json.loads(results_q.get_one(conn, run_pk, "make", -1, "return_value"))
    make = rows[("make", -1)]
    assert make.value == "" and make.length == 5000  # only the reference is in the database
    assert Path(make.ref).is_file() and make.ref.startswith(str(harness.home / "results"))
    assert len(big_value) == 5000 and big_value[0].startswith("row-000000-")
    assert rows[("shout", 0)].ref is not None and rows[("shout", 0)].value == ""
    assert rows[("shout", 1)].ref is None  # small results stay inline
