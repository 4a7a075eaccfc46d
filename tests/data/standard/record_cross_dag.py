"""How cross_dag_airflow_3_3_2.json was recorded (with Airflow 3.3.2's python, outside the repo).

Airflow's ``dag.test()`` runs no scheduler, so a run that TriggerDagRunOperator creates
never runs there. This driver runs a controller with ``dag.test()`` in one process and, in
a second, ends the triggered run in the state the case needs: what is recorded is how the
operator reacts to its child ending, which is the semantics in question.

    AIRFLOW_HOME=... AIRFLOW__CORE__DAGS_FOLDER=<folder with airflow_cross_dag.py> airflow db migrate
    airflow dags reserialize
    python record_cross_dag.py x set success child_success_False &   # then:
    python record_cross_dag.py controller_success_poll run
"""

import json
import os
import sys
import time
from datetime import UTC, datetime

dag_id = sys.argv[1]
if sys.argv[2] == "run":
    from airflow.dag_processing.dagbag import DagBag

    b = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"], safe_mode=False)
    r = b.dags[dag_id].test(logical_date=datetime(2024, 1, 2, tzinfo=UTC))
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as s:
        tis = {t.task_id: t.state for t in s.query(TaskInstance).filter_by(dag_id=dag_id).all()}
    print(
        "RESULT", json.dumps({"dag": dag_id, "run": str(r.state), "tis": {k: str(v) for k, v in tis.items()}})
    )
else:  # finish the child run as sys.argv[3]
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    run_id = sys.argv[4]
    for _ in range(600):
        with create_session() as s:
            dr = s.query(DagRun).filter_by(dag_id="target", run_id=run_id).one_or_none()
            if dr is not None:
                dr.state = sys.argv[3]
                s.commit()
                print("SET", run_id, sys.argv[3])
                break
        time.sleep(0.2)
