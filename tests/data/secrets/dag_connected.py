"""The connections issue's acceptance DAG: reads a Variable (at parse time and in a
template), renders a connection's host, runs SQL on PostgreSQL and MariaDB, calls an HTTP
endpoint, writes with ObjectStoragePath, and on failure notifies by SMTP and Slack.

Everything it reaches comes from Variables and Connections the test sets up; conf
``{"fail": true}`` makes its last task fail, to see the notifications."""

import json
from datetime import UTC, datetime

from millstream import (
    DAG,
    BashOperator,
    ObjectStoragePath,
    SlackWebhookNotifier,
    SmtpNotifier,
    Variable,
    task,
)
from millstream.sdk.standard.http import HttpOperator
from millstream.sdk.standard.sql import SQLExecuteQueryOperator

TABLE = Variable.get("accept_table")  # read when the file is parsed

notify = [
    SmtpNotifier(to="oncall@example.com", subject="{{ dag.dag_id }}.{{ ti.task_id }} failed"),
    SlackWebhookNotifier(text="{{ dag.dag_id }}.{{ ti.task_id }} failed in {{ run_id }}"),
]

with DAG(
    "connected",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    default_args={"on_failure_callback": notify},
    params={"fail": False},
):
    where = BashOperator(
        task_id="where",
        bash_command="echo pg={{ conn.warehouse_pg.host }} table={{ var.value.accept_table }}",
    )
    rows = "create table if not exists {t} (n int)", "delete from {t}", "insert into {t} values (1), (2), (3)"
    pg = SQLExecuteQueryOperator(
        task_id="pg",
        conn_id="warehouse_pg",
        sql=[s.format(t=TABLE) for s in rows] + [f"select sum(n) from {TABLE}"],
    )
    maria = SQLExecuteQueryOperator(
        task_id="maria",
        conn_id="warehouse_maria",
        sql=[s.format(t=TABLE) for s in rows] + [f"select sum(n) * 10 from {TABLE}"],
    )
    api = HttpOperator(
        task_id="api",
        http_conn_id="rows_api",
        endpoint="rows/{{ ds }}",
        method="GET",
        response_filter=lambda response: response.json(),
    )

    @task
    def write(pg_rows, maria_rows, api_body):
        out = ObjectStoragePath(Variable.get("accept_out"), conn_id="lake") / "summary.json"
        with out.open("w") as f:
            f.write(json.dumps({"pg": pg_rows, "maria": maria_rows, "api": api_body}, default=str))
        return out

    @task
    def check(path, params=None):
        summary = json.loads(path.read_text())
        print("summary", summary)
        if params["fail"]:
            raise ValueError("asked to fail")
        return summary

    where >> [pg, maria, api]
    check(write(pg.output, maria.output, api.output))
