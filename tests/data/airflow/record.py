"""Records what Airflow 3.3.2 does with a DAG file (run with Airflow's python, outside the repo).

    python record.py ../templating/dag_templates.py > ../templating/airflow_3_3_2.json

The file must import from Airflow when it can and from Millstream otherwise, and write
what its tasks saw into the folder named by $TEMPLATES_OUT. The output holds every
DAG's run state and task instance states under ``dag.test()``, and every file written.

Each DAG runs ``dag.test()`` in its own process with its own fresh AIRFLOW_HOME and
metadata database, with the file's folder as the DAG folder (``dag.test()`` syncs that
folder to the database first, and refuses a DAG it did not find there). Two
``dag.test()`` calls in one process share a SQLite session that Airflow 3.3.2 does not
expect, and the second fails on an unrelated query error.
"""

import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime


def _bag(path: str):
    sys.path.insert(0, os.path.dirname(path))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=path, safe_mode=False)
    assert not bag.import_errors, bag.import_errors
    return bag


def run_one(path: str, dag_id: str) -> dict:
    """In a child process: test one DAG and report its run and task instance states."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    run = _bag(path).dags[dag_id].test(logical_date=datetime(2024, 1, 2, tzinfo=UTC))
    with create_session() as s:
        tis = s.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run.run_id).all()
        return {
            "run": str(getattr(run.state, "value", run.state)),
            "tasks": {f"{t.task_id}[{t.map_index}]": str(getattr(t.state, "value", t.state)) for t in tis},
        }


def _child(args: list[str], env: dict) -> str:
    done = subprocess.run(
        [sys.executable, __file__, *args], env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip().splitlines()[-1]


def main(path: str) -> None:
    out = tempfile.mkdtemp()
    result: dict = {"folder": out, "states": {}, "outputs": {}}
    base = {
        **os.environ,
        "TEMPLATES_OUT": out,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__DAGS_FOLDER": os.path.dirname(path),
    }
    dag_ids = json.loads(_child(["--list", path], {**base, "AIRFLOW_HOME": tempfile.mkdtemp()}))
    for dag_id in dag_ids:
        env = {**base, "AIRFLOW_HOME": tempfile.mkdtemp()}
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
        )
        result["states"][dag_id] = json.loads(_child(["--run", path, dag_id], env))
    for name in sorted(os.listdir(out)):
        with open(os.path.join(out, name)) as f:
            result["outputs"][name] = json.load(f) if name.endswith(".json") else f.read()
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    if sys.argv[1] == "--list":
        print(json.dumps(sorted(_bag(os.path.abspath(sys.argv[2])).dags)))
    elif sys.argv[1] == "--run":
        print(json.dumps(run_one(os.path.abspath(sys.argv[2]), sys.argv[3])))
    else:
        main(os.path.abspath(sys.argv[1]))
