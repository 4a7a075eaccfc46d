"""The standard provider's skip and state semantics, one DAG per case.

The same file runs on Airflow 3.3.2 (its answers are in airflow_3_3_2.json, written by
tests/data/airflow/record.py) and on Millstream (tests/sdk/test_standard_provider.py),
always with logical date 2024-01-02 (a Tuesday). Recorded with the connection Airflow's
FileSensor needs, which a fresh Airflow database lacks:
AIRFLOW_CONN_FS_DEFAULT='{"conn_type": "fs"}' python record.py dag_standard.py

Two things Airflow's ``dag.test()`` does differently from its own triggerer are left out
here and tested against the triggerer's behaviour instead (test_standard_provider.py).
"""

import os
import sys
from datetime import UTC, datetime, time, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.providers.standard.operators.datetime import BranchDateTimeOperator
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.providers.standard.operators.latest_only import LatestOnlyOperator
    from airflow.providers.standard.operators.python import (
        BranchPythonOperator,
        PythonOperator,
        ShortCircuitOperator,
    )
    from airflow.providers.standard.operators.weekday import BranchDayOfWeekOperator
    from airflow.providers.standard.sensors.bash import BashSensor
    from airflow.providers.standard.sensors.date_time import DateTimeSensor, DateTimeSensorAsync
    from airflow.providers.standard.sensors.filesystem import FileSensor
    from airflow.providers.standard.sensors.python import PythonSensor
    from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
    from airflow.providers.standard.sensors.weekday import DayOfWeekSensor
    from airflow.providers.standard.utils.weekday import WeekDay
    from airflow.sdk import DAG, BaseBranchOperator, BaseOperator, Label, TaskGroup, TriggerRule, task
except ImportError:
    from millstream import (
        DAG,
        BaseBranchOperator,
        BaseOperator,
        BashOperator,
        BashSensor,
        BranchDateTimeOperator,
        BranchDayOfWeekOperator,
        BranchPythonOperator,
        DateTimeSensor,
        DateTimeSensorAsync,
        DayOfWeekSensor,
        EmptyOperator,
        FileSensor,
        Label,
        LatestOnlyOperator,
        PythonOperator,
        PythonSensor,
        ShortCircuitOperator,
        TaskGroup,
        TimeDeltaSensor,
        TriggerRule,
        WeekDay,
        task,
    )

from standard_triggers import BrokenTrigger, EchoTrigger

START = datetime(2024, 1, 1, tzinfo=UTC)
HERE = os.path.abspath(__file__)


def _dag(dag_id):
    return DAG(dag_id, schedule=None, start_date=START, catchup=False)


for ignore in (True, False):
    with _dag(f"short_circuit_ignore_{str(ignore).lower()}"):
        sc = ShortCircuitOperator(
            task_id="sc", python_callable=lambda: False, ignore_downstream_trigger_rules=ignore
        )
        direct = EmptyOperator(task_id="direct")
        after_all_done = EmptyOperator(task_id="after_all_done", trigger_rule=TriggerRule.ALL_DONE)
        after_default = EmptyOperator(task_id="after_default")
        sc >> direct >> after_all_done >> after_default

with _dag("short_circuit_true"):
    sc = ShortCircuitOperator(task_id="sc", python_callable=lambda: "yes")
    sc >> EmptyOperator(task_id="direct") >> EmptyOperator(task_id="after")

with _dag("short_circuit_teardown"):
    setup_ = EmptyOperator(task_id="setup_")
    sc = ShortCircuitOperator(task_id="sc", python_callable=lambda: 0)
    work = EmptyOperator(task_id="work")
    clean = EmptyOperator(task_id="clean").as_teardown(setups=setup_)
    setup_ >> sc >> work >> clean

with _dag("branch_join"):
    branch = BranchPythonOperator(task_id="branch", python_callable=lambda: "left")
    left = EmptyOperator(task_id="left")
    right = EmptyOperator(task_id="right")
    join = EmptyOperator(task_id="join", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    join_default = EmptyOperator(task_id="join_default")
    branch >> Label("left way") >> left >> join
    branch >> Label("right way") >> right >> join
    [left, right] >> join_default
    # Directly downstream of the branch and after the chosen path: not skipped.
    also = EmptyOperator(task_id="also", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    branch >> also
    left >> also

with _dag("branch_none"):
    branch = BranchPythonOperator(task_id="branch", python_callable=lambda: None)
    branch >> [EmptyOperator(task_id="a"), EmptyOperator(task_id="b")]

with _dag("branch_group"):
    branch = BranchPythonOperator(task_id="branch", python_callable=lambda: "grp")
    with TaskGroup("grp") as grp:
        EmptyOperator(task_id="first") >> EmptyOperator(task_id="second")
    other = EmptyOperator(task_id="other")
    branch >> [grp, other]


class ChooseBoth(BaseBranchOperator):
    def choose_branch(self, context):
        return ["one", "two"] if context["ds"] == "2024-01-02" else "three"


with _dag("base_branch_subclass"):
    ChooseBoth(task_id="choose") >> [EmptyOperator(task_id=t) for t in ("one", "two", "three")]

with _dag("branch_day_of_week"):
    day = BranchDayOfWeekOperator(
        task_id="day",
        week_day={WeekDay.TUESDAY, "Wednesday"},
        use_task_logical_date=True,
        follow_task_ids_if_true="midweek",
        follow_task_ids_if_false="other",
    )
    day >> [EmptyOperator(task_id="midweek"), EmptyOperator(task_id="other")]

with _dag("branch_date_time"):
    window = BranchDateTimeOperator(
        task_id="window",
        target_lower=time(23, 0),
        target_upper=time(1, 0),  # across midnight: 2024-01-02 00:00 is inside
        use_task_logical_date=True,
        follow_task_ids_if_true="inside",
        follow_task_ids_if_false="outside",
    )
    window >> [EmptyOperator(task_id="inside"), EmptyOperator(task_id="outside")]

with _dag("latest_only_manual"):
    LatestOnlyOperator(task_id="latest") >> EmptyOperator(task_id="after")

with _dag("run_if_skip_if"):

    @task.run_if(lambda context: context["ds"] == "2024-01-02")
    @task
    def runs():
        return 1

    @task.run_if(lambda context: (False, "not today"))
    @task
    def not_run():
        return 2

    @task.skip_if(lambda context: True)
    @task
    def skipped():
        return 3

    runs() >> EmptyOperator(task_id="after_runs")
    not_run() >> EmptyOperator(task_id="after_not_run")
    skipped()

with _dag("sensors"):
    PythonSensor(task_id="python_true", python_callable=lambda: True, poke_interval=0.1, timeout=5)
    BashSensor(task_id="bash_ok", bash_command="exit 0", poke_interval=0.1, timeout=5)
    BashSensor(task_id="bash_fails", bash_command="exit 3", retry_exit_code=1, poke_interval=0.1, timeout=5)
    PythonSensor(
        task_id="python_soft", python_callable=lambda: False, poke_interval=0.1, timeout=0.3, soft_fail=True
    )
    DateTimeSensor(task_id="date_passed", target_time="{{ data_interval_end }}", poke_interval=0.1)
    DayOfWeekSensor(task_id="tuesday", week_day="tuesday", use_task_logical_date=True, poke_interval=0.1)
    FileSensor(task_id="file_here", filepath=HERE, poke_interval=0.1, timeout=5)
    FileSensor(
        task_id="file_glob",
        filepath=os.path.join(os.path.dirname(HERE), "*.py"),
        poke_interval=0.1,
        timeout=5,
    )

with _dag("deferrable"):
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    DateTimeSensorAsync(task_id="until_soon", target_time=soon) >> EmptyOperator(task_id="after_soon")
    TimeDeltaSensor(task_id="delta_passed", delta=timedelta(seconds=1), deferrable=True)


class Echo(BaseOperator):
    def execute(self, context):
        self.defer(trigger=EchoTrigger({"n": 1}), method_name="done")

    def done(self, context, event=None):
        return {"event": event}


class Broken(BaseOperator):
    def execute(self, context):
        self.defer(trigger=BrokenTrigger(), method_name="done")

    def done(self, context, event=None):
        return event


class NoSuchMethod(BaseOperator):
    def execute(self, context):
        self.defer(trigger=EchoTrigger(1), method_name="not_there")


with _dag("custom_triggers"):
    echo = Echo(task_id="echo")

    def check(ti=None):
        value = ti.xcom_pull(task_ids="echo")
        assert value == {"event": {"n": 1}}, value

    echo >> PythonOperator(task_id="check", python_callable=check)
    Broken(task_id="broken") >> EmptyOperator(task_id="after_broken")
    NoSuchMethod(task_id="no_such_method")

with _dag("bash_skip_in_branch"):
    branch = BranchPythonOperator(task_id="branch", python_callable=lambda: ["run_bash"])
    branch >> [BashOperator(task_id="run_bash", bash_command="echo hi"), EmptyOperator(task_id="idle")]
