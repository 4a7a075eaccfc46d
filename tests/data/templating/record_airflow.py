"""Records what Airflow 3.3.2 renders for dag_templates.py (run with Airflow's python, outside the repo).

    python record_airflow.py > airflow_3_3_2.json

Each DAG runs ``dag.test()`` in its own process with its own fresh AIRFLOW_HOME and
metadata database, with this folder as the DAG folder (``dag.test()`` syncs that folder
to the database first, and refuses a DAG it did not find there). Two ``dag.test()`` calls in one process share a SQLite session that
Airflow 3.3.2 does not expect, and the second fails on an unrelated query error.
"""

import glob
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime

HERE = os.path.dirname(os.path.abspath(__file__))
DAG_IDS = ("templates_native", "templates_plain", "templates_strict")


def run_one(dag_id: str) -> dict:
    """In a child process: test one DAG and report its run and task instance states."""
    sys.path.insert(0, HERE)
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    bag = DagBag(dag_folder=os.path.join(HERE, "dag_templates.py"), safe_mode=False)
    assert not bag.import_errors, bag.import_errors
    run = bag.dags[dag_id].test(logical_date=datetime(2024, 1, 2, tzinfo=UTC))
    with create_session() as s:
        tis = s.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run.run_id).all()
        return {
            "run": str(getattr(run.state, "value", run.state)),
            "tasks": {f"{t.task_id}[{t.map_index}]": str(getattr(t.state, "value", t.state)) for t in tis},
        }


def main() -> None:
    out = tempfile.mkdtemp()
    result: dict = {"states": {}, "outputs": {}}
    for dag_id in DAG_IDS:
        home = tempfile.mkdtemp()
        env = {
            **os.environ,
            "AIRFLOW_HOME": home,
            "TEMPLATES_OUT": out,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            # dag.test() syncs the DAG folder's bundle to the database before it runs
            "AIRFLOW__CORE__DAGS_FOLDER": HERE,
        }
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
        )
        child = subprocess.run(
            [sys.executable, __file__, dag_id], env=env, check=True, capture_output=True, text=True
        )
        result["states"][dag_id] = json.loads(child.stdout.strip().splitlines()[-1])
    for path in sorted(glob.glob(os.path.join(out, "*"))):
        name = os.path.basename(path)
        with open(path) as f:
            result["outputs"][name] = json.load(f) if name.endswith(".json") else f.read()
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(json.dumps(run_one(sys.argv[1])))
    else:
        main()
