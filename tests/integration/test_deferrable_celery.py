"""Deferrable tasks with Celery workers on PostgreSQL: the attempt defers on one worker,
the scheduler's embedded triggerer waits, and the task resumes on a worker; a
TriggerDagRunOperator waits for its child run, deferred, in the same setting."""

from __future__ import annotations

import pytest

from .test_celery import CeleryCluster

DAG = """
from datetime import datetime, timedelta, timezone
from millstream import DAG, BaseOperator, EmptyOperator, TriggerDagRunOperator
from millstream.sdk.standard.triggers import TimeDeltaTrigger


class Later(BaseOperator):
    def execute(self, context):
        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=0.5)), method_name="done", kwargs={"k": 1})

    def done(self, context, event=None, k=None):
        return k


S = datetime(2024, 1, 1, tzinfo=timezone.utc)
with DAG("later", schedule=None, start_date=S):
    Later(task_id="later") >> EmptyOperator(task_id="after")
with DAG("parent_celery", schedule=None, start_date=S):
    TriggerDagRunOperator(
        task_id="trigger", trigger_dag_id="later", wait_for_completion=True, deferrable=True, poke_interval=0.2
    )
"""


@pytest.mark.usefixtures("pg_url")
def test_deferred_tasks_resume_on_celery_workers(tmp_path, pg_url):
    c = CeleryCluster(tmp_path, pg_url)
    (c.dags / "later.py").write_text(DAG)
    try:
        c.start(workers=1)
        c.wait_workers(1)
        run_id = c.trigger("later")
        assert c.wait_run("later", run_id) == "success"
        tis = {t["task_id"]: t for t in c.tis("later", run_id)}
        assert (tis["later"]["state"], tis["later"]["try_number"]) == ("success", 1)
        parent = c.trigger("parent_celery")
        assert c.wait_run("parent_celery", parent) == "success"
    finally:
        c.stop()
