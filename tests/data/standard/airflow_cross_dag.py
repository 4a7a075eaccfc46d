"""The cross-DAG cases as recorded on Airflow 3.3.2 (see record_cross_dag.py)."""

from datetime import UTC, datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG

S = datetime(2024, 1, 1, tzinfo=UTC)
with DAG("target", schedule=None, start_date=S):
    EmptyOperator(task_id="work")
for outcome in ("success", "failed"):
    for deferrable in (False, True):
        with DAG(
            f"controller_{outcome}_{'deferrable' if deferrable else 'poll'}", schedule=None, start_date=S
        ):
            TriggerDagRunOperator(
                task_id="trigger",
                trigger_dag_id="target",
                trigger_run_id=f"child_{outcome}_{deferrable}",
                wait_for_completion=True,
                poke_interval=1,
                deferrable=deferrable,
                conf={"x": 1},
            ) >> EmptyOperator(task_id="after")
with DAG("controller_unknown", schedule=None, start_date=S):
    TriggerDagRunOperator(task_id="trigger", trigger_dag_id="no_such_dag")
with DAG("controller_exists", schedule=None, start_date=S):
    TriggerDagRunOperator(
        task_id="first", trigger_dag_id="target", trigger_run_id="same"
    ) >> TriggerDagRunOperator(task_id="again", trigger_dag_id="target", trigger_run_id="same")
    TriggerDagRunOperator(
        task_id="first2", trigger_dag_id="target", trigger_run_id="same2"
    ) >> TriggerDagRunOperator(
        task_id="skip_again2", trigger_dag_id="target", trigger_run_id="same2", skip_when_already_exists=True
    )
