"""The standard provider's operators and sensors end as on Airflow 3.3.2.

tests/data/standard/dag_standard.py holds one DAG per case; airflow_3_3_2.json beside it
is what Airflow's ``dag.test()`` gave for each (see that file for how it was recorded).
"""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import millstream
from millstream import DAG, BaseOperator, EmptyOperator, WaitSensor
from millstream.core.states import TaskState as S

DATA = Path(__file__).resolve().parents[1] / "data" / "standard"
AIRFLOW = json.loads((DATA / "airflow_3_3_2.json").read_text())
DAY = datetime(2024, 1, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def dags():
    loaded = millstream.load_dags(DATA / "dag_standard.py")
    assert not loaded.errors, loaded.errors
    return loaded.dags


def test_every_recorded_dag_is_in_the_file(dags):
    assert sorted(dags) == sorted(AIRFLOW["states"])


@pytest.mark.parametrize("dag_id", sorted(AIRFLOW["states"]))
def test_same_states_as_airflow(dags, dag_id):
    run = dags[dag_id].test(logical_date=DAY)
    expected = AIRFLOW["states"][dag_id]
    got = {f"{ti.task_id}[{ti.map_index}]": ti.state.value for ti in run.task_instances}
    assert (run.state.value, got) == (expected["run"], expected["tasks"])


def test_failures_say_why(dags):
    run = dags["custom_triggers"].test(logical_date=DAY)
    assert "the service the trigger watches is gone" in run.ti("broken").reason
    assert "Traceback" in run.ti("broken").reason
    assert "NoSuchMethod has no method 'not_there' to resume at" in run.ti("no_such_method").reason
    sensors = dags["sensors"].test(logical_date=DAY)
    assert "Command exited with return code 3" in sensors.ti("bash_fails").reason


def test_branch_edges_carry_their_labels(dags):
    spec = dags["branch_join"].to_spec()
    assert spec.task("left").edge_labels == {"branch": "left way"}
    assert spec.task("right").edge_labels == {"branch": "right way"}
    assert spec.task("join").edge_labels == {}


# -- where Airflow's dag.test() differs from its own triggerer -----------------------------
# dag.test() runs triggers in line and then (airflow/sdk/definitions/dag.py, _run_task)
# resumes with next_kwargs = {"event": payload}, dropping the deferral's kwargs, and it
# resumes even on a TaskSuccessEvent. Airflow's triggerer (airflow/models/trigger.py,
# submit_event) adds the event to the deferral's kwargs, and ends the task on a
# TaskSuccessEvent. Millstream does what the triggerer does, in dag.test() too.


class _DeferWithKwargs(BaseOperator):
    def execute(self, context):
        from millstream.sdk.standard.triggers import TimeDeltaTrigger

        self.defer(trigger=TimeDeltaTrigger(timedelta(0)), method_name="done", kwargs={"extra": "kept"})

    def done(self, context, event=None, extra=None):
        return {"extra": extra, "event_is_a_moment": isinstance(event, datetime)}


def test_resume_gets_the_deferral_kwargs_and_the_event():
    with DAG("kw", schedule=None, start_date=DAY) as d:
        _DeferWithKwargs(task_id="t")
    run = d.test()
    assert run.ti("t").state is S.SUCCESS
    assert run.ti("t").try_number == 1  # the resumed attempt is the same try
    assert "deferring: waiting on millstream.sdk.standard.triggers.DateTimeTrigger" in run.ti("t").log
    assert "returned: {'extra': 'kept', 'event_is_a_moment': True}" in run.ti("t").log


def test_an_end_from_trigger_event_ends_the_task_without_a_worker():
    with DAG("wait", schedule=None, start_date=DAY) as d:
        WaitSensor(task_id="w", time_to_wait=timedelta(seconds=0.2), deferrable=True) >> EmptyOperator(
            task_id="after"
        )
    run = d.test()
    assert (run.ti("w").state, run.ti("after").state) == (S.SUCCESS, S.SUCCESS)
    assert run.ti("w").reason == "success: ended by its trigger"


def test_a_trigger_past_its_timeout_fails_its_task(tmp_path):
    from millstream import FileSensor

    with DAG("timeout", schedule=None, start_date=DAY) as d:
        FileSensor(
            task_id="never", filepath=str(tmp_path / "never.csv"), deferrable=True, timeout=0.5, retries=2
        )
    run = d.test()
    ti = run.ti("never")
    assert (ti.state, ti.try_number) == (S.FAILED, 1)  # a timeout is final, retries or not
    assert ti.reason.startswith("attempt 1 failed: trigger timeout: not fired by ")


class _Forgetful(BaseOperator):
    """Its trigger's serialize() leaves out an argument __init__ needs."""

    def execute(self, context):
        self.defer(trigger=_ForgetfulTrigger(5), method_name="execute")


from millstream import BaseTrigger  # noqa: E402


class _ForgetfulTrigger(BaseTrigger):
    def __init__(self, seconds=1):
        super().__init__()
        self.seconds = seconds

    def serialize(self):
        return (f"{__name__}._ForgetfulTrigger", {})

    async def run(self):
        yield None


def test_a_trigger_that_does_not_round_trip_fails_only_its_task():
    with DAG("forgetful", schedule=None, start_date=DAY) as d:
        _Forgetful(task_id="bad")
        EmptyOperator(task_id="fine")
    run = d.test()
    assert run.ti("fine").state is S.SUCCESS
    assert run.ti("bad").state is S.FAILED
    assert "serialize() does not round-trip" in run.ti("bad").reason
    assert "serialize() must return every argument __init__ needs" in run.ti("bad").reason
