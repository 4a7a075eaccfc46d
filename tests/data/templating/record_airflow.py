"""Records what Airflow 3.3.2 renders for dag_templates.py (run with Airflow's python, outside the repo).

python record_airflow.py > airflow_3_3_2.json
"""

import glob
import json
import os
import sys
import tempfile
from datetime import UTC, datetime

out = tempfile.mkdtemp()
os.environ["TEMPLATES_OUT"] = out
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from airflow.dag_processing.dagbag import DagBag  # noqa: E402
from airflow.models.taskinstance import TaskInstance  # noqa: E402
from airflow.utils.session import create_session  # noqa: E402

bag = DagBag(
    dag_folder=os.path.join(os.path.dirname(os.path.abspath(__file__)), "dag_templates.py"), safe_mode=False
)
assert not bag.import_errors, bag.import_errors
result = {"states": {}, "outputs": {}}
for dag_id in sorted(bag.dags):
    run = bag.dags[dag_id].test(logical_date=datetime(2024, 1, 2, tzinfo=UTC))
    with create_session() as s:
        tis = s.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run.run_id)
        result["states"][dag_id] = {
            "run": str(getattr(run.state, "value", run.state)),
            "tasks": {f"{t.task_id}[{t.map_index}]": str(getattr(t.state, "value", t.state)) for t in tis},
        }
for path in sorted(glob.glob(os.path.join(out, "*"))):
    name = os.path.basename(path)
    with open(path) as f:
        result["outputs"][name] = json.load(f) if name.endswith(".json") else f.read()
json.dump(result, sys.stdout, indent=1, sort_keys=True)
print()
