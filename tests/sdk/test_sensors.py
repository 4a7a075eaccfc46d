"""Sensors in poke mode, through dag.test()."""

from datetime import timedelta

from millstream import DAG, PokeReturnValue, task
from millstream.core.states import RunState, TaskState
from millstream.sdk.execution import sensor_interval

S = TaskState


def test_poke_mode_waits_until_done_and_passes_its_value_on():
    calls = []
    got = []

    @task.sensor(poke_interval=0.01, timeout=30)
    def wait_for_file():
        calls.append(1)
        return PokeReturnValue(is_done=len(calls) >= 3, xcom_value="s3://bucket/file.csv")

    @task
    def use(path):
        got.append(path)

    with DAG("d") as d:
        use(wait_for_file())
    run = d.test()
    assert run.state is RunState.SUCCESS and len(calls) == 3 and got == ["s3://bucket/file.csv"]
    assert run.ti("wait_for_file").try_number == 1
    assert run.ti("wait_for_file").log.count("not yet; poking again") == 2


def test_timeout_fails_without_retrying_and_soft_fail_skips():
    @task.sensor(poke_interval=0.01, timeout=timedelta(seconds=0.05), retries=3)
    def never():
        return False

    @task.sensor(poke_interval=0.01, timeout=0.05, soft_fail=True)
    def never_soft():
        return False

    @task
    def after():
        return 1

    with DAG("d") as d:
        never()
        never_soft() >> after()
    run = d.test()
    assert run.ti("never").state is S.FAILED and run.ti("never").try_number == 1
    assert "not satisfied after" in run.ti("never").log
    assert run.ti("never_soft").state is S.SKIPPED and run.ti("after").state is S.SKIPPED


def test_exponential_backoff_doubles_and_respects_max_wait():
    cfg = {"poke_interval": 10.0, "exponential_backoff": True, "max_wait": 50.0}
    assert 9 <= sensor_interval(cfg, 0) <= 11
    assert 18 <= sensor_interval(cfg, 10) <= 22  # after one poke
    assert 36 <= sensor_interval(cfg, 30) <= 44  # after two
    assert sensor_interval(cfg, 1000) == 50.0
    assert sensor_interval({**cfg, "exponential_backoff": False}, 1000) == 10.0


def test_sensor_arguments_are_checked():
    import pytest

    with pytest.raises(ValueError, match="sensor mode must be 'poke' or 'reschedule'"):

        @task.sensor(mode="sleepy")
        def s():
            return True

    with pytest.raises(TypeError, match="unknown task argument 'poke_interval'"):

        @task(poke_interval=5)
        def t():
            return True
