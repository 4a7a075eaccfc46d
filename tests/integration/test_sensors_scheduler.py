"""A sensor in reschedule mode frees its worker slot between pokes."""

import textwrap

DAG = """
from pathlib import Path
from millstream import dag, task

FLAG = Path({flag!r})

@dag
def sensing():
    @task.sensor(poke_interval=0.2, timeout=60, mode="reschedule", priority_weight=10)
    def wait_for_flag():
        return FLAG.exists()

    @task
    def make_flag():
        FLAG.touch()

    @task
    def after():
        return 1

    wait_for_flag() >> after()
    make_flag()

sensing()
"""


def test_reschedule_mode_frees_the_only_slot_for_other_work(harness, tmp_path):
    harness.write_dag("sensing.py", textwrap.dedent(DAG.format(flag=str(tmp_path / "flag"))))
    # One worker, no prefetch backlog to hide behind: make_flag can only run if the sensor
    # gives its slot back between pokes.
    harness.start(parallelism=1)
    harness.scheduler.executor.slots = 1
    run_id = harness.trigger("sensing")
    assert harness.wait_run("sensing", run_id, timeout=60) == "success"
    tis = harness.tis("sensing", run_id)
    assert tis["wait_for_flag"]["try_number"] == 1, "pokes that found nothing do not use tries"
    assert tis["wait_for_flag"]["sensor_started_at"] is not None
    assert tis["after"]["state"] == "success"
