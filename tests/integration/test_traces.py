"""OpenTelemetry traces and JSON logs with the real scheduler and real workers.

The scheduler runs in the test process with the SDK's in-memory exporter; worker
processes (local and Celery) are configured as a user would configure them, by settings,
and send the task's own spans over OTLP/HTTP to a receiver the test runs. Every span must
sit under the right parent: the task's own span -> its attempt -> its instance -> the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from millstream.settings import Settings
from millstream.worker import tracing

from .conftest import Harness, wait_for
from .otlp import OtlpReceiver

TRACED_DAG = """
    import logging
    from opentelemetry import trace
    from millstream import dag, task
    from millstream.sdk.context import get_current_context

    @dag(schedule=None)
    def traced():
        @task
        def extract():
            with trace.get_tracer("user.code").start_as_current_span("extract.own") as span:
                span.set_attribute("rows", 3)
            logging.getLogger("user.code").warning("extracted %d rows", 3)
            print("carrier:", get_current_context()["ti"].context_carrier["traceparent"])
            return 3

        @task(retries=1, retry_delay=0)
        def flaky(rows):
            with trace.get_tracer("user.code").start_as_current_span("flaky.own"):
                if get_current_context()["ti"].try_number == 1:
                    raise ValueError("first try fails")
            return rows

        flaky(extract())

    traced()
"""


@pytest.fixture
def memory_spans() -> Iterator[object]:
    """Tracing on in this process (the scheduler's), into the SDK's in-memory exporter."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracing.configure(Settings.load(environ={}), exporter=exporter)
    yield exporter
    tracing.disable()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """An OTLP collector for the worker processes, which find it through their settings."""
    with OtlpReceiver() as r:
        monkeypatch.setenv("MILLSTREAM__TRACES__OTEL_ON", "true")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", r.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # milliseconds: the test waits less
        monkeypatch.setenv("OTEL_SERVICE_NAME", "millstream-worker-under-test")
        yield r


def _by_name(spans: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


def check_tree(scheduler_spans: list, worker_spans: list) -> None:
    """Run -> instance -> attempt -> the task's own span, with one trace for the whole run."""
    spans = _by_name(scheduler_spans)
    (run,) = spans["dag_run.traced"]
    assert run.parent is None
    trace_id = run.context.trace_id
    assert {s.context.trace_id for s in scheduler_spans} == {trace_id}
    for task_id, tries in (("extract", 1), ("flaky", 2)):
        (ti,) = spans[f"task_instance.{task_id}"]
        assert ti.parent.span_id == run.context.span_id
        assert ti.attributes["airflow.task_instance.state"] == "success"
        attempts = sorted(
            spans[f"task_run.{task_id}"], key=lambda s: s.attributes["airflow.task_instance.try_number"]
        )
        assert [a.attributes["airflow.task_instance.try_number"] for a in attempts] == list(
            range(1, tries + 1)
        )
        assert {a.parent.span_id for a in attempts} == {ti.context.span_id}
        assert ti.start_time <= attempts[0].start_time and attempts[-1].end_time <= ti.end_time
        own = [s for s in worker_spans if s.name == f"{task_id}.own"]
        assert len(own) == tries, own
        assert {(s.trace_id, s.parent_span_id) for s in own} == {
            (trace_id, a.context.span_id) for a in attempts
        }
    flaky_attempts = {a.attributes["airflow.task_instance.try_number"]: a for a in spans["task_run.flaky"]}
    assert flaky_attempts[1].status.status_code.name == "ERROR"
    assert "first try fails" in flaky_attempts[1].status.description
    assert flaky_attempts[2].status.status_code.name == "OK"


def test_dag_test_nests_the_tasks_own_spans_under_attempt_instance_and_run(memory_spans, tmp_path) -> None:
    """In one process (``dag.test()``, the inline executor): everything in one exporter."""
    ns: dict = {}
    exec(compile(textwrap.dedent(TRACED_DAG), str(tmp_path / "traced.py"), "exec"), ns)
    result = ns["traced"]().test()
    assert result.state == "success"
    spans = list(memory_spans.get_finished_spans())
    mine = [s for s in spans if s.name.endswith(".own")]
    worker_view = [
        type("S", (), {"name": s.name, "trace_id": s.context.trace_id, "parent_span_id": s.parent.span_id})
        for s in mine
    ]
    check_tree([s for s in spans if s not in mine], worker_view)
    # The task saw its attempt's context as Airflow's ti.context_carrier.
    (attempt,) = [s for s in spans if s.name == "task_run.extract"]
    traceparent = f"00-{attempt.context.trace_id:032x}-{attempt.context.span_id:016x}-01"
    assert f"carrier: {traceparent}" in result.ti("extract").log


def test_local_workers_send_the_tasks_spans_under_their_attempts(
    memory_spans, receiver, harness: Harness
) -> None:
    harness.write_dag("traced.py", TRACED_DAG)
    harness.start()
    run_id = harness.trigger("traced")
    assert harness.wait_run("traced", run_id) == "success"
    wait_for(
        lambda: len(receiver.named("flaky.own")) == 2 and receiver.named("extract.own"), 30, "worker spans"
    )
    assert {s.service for s in receiver.spans} == {"millstream-worker-under-test"}
    check_tree(list(memory_spans.get_finished_spans()), receiver.spans)


def test_traces_across_a_celery_worker_and_json_logs(
    memory_spans, receiver, tmp_path, pg_url, monkeypatch
) -> None:
    """The acceptance test: the scheduler here, a real Celery worker in its own process
    with its own settings (traces on, JSON logs), the trace whole across the two."""
    from millstream.executors.celery import CeleryExecutor
    from millstream.scheduler.loop import Scheduler
    from millstream.scheduler.parsing import DagFolder

    from .test_celery import CeleryCluster

    monkeypatch.setenv("MILLSTREAM__LOGGING__JSON_LOGS", "true")
    c = CeleryCluster(tmp_path, pg_url)
    (c.dags / "traced.py").write_text(textwrap.dedent(TRACED_DAG))
    scheduler = Scheduler(
        c.store,
        CeleryExecutor(c.store, c.broker, default_queue=c.queue, lease_timeout=10),
        logs_folder=str(tmp_path / "logs"),
        dag_folder=DagFolder(c.dags, 30),
        poll_interval=0.1,
        dag_refresh_interval=0.5,
        paused_on_creation=False,
        result_store_url=str(tmp_path / "results"),
    )
    thread = threading.Thread(target=scheduler.run_forever, daemon=True)
    try:
        c.spawn("worker0", "celery", "worker", "-c", "1")
        thread.start()  # the attempts wait in the queue until the worker is up
        run_id = control_trigger(c, scheduler)
        state = wait_for(lambda: _run_state(c, run_id), 90, "the traced run to finish")
        assert state == "success", (tmp_path / "worker0.log").read_text()[-3000:]
        wait_for(
            lambda: len(receiver.named("flaky.own")) == 2 and receiver.named("extract.own"),
            30,
            "worker spans",
        )
        check_tree(list(memory_spans.get_finished_spans()), receiver.spans)
    finally:
        scheduler.stop()
        thread.join(30)
        c.stop()

    # The worker's own log: one JSON object per line; what the task logged carries its ids.
    # (Celery's own "worker: Warm shutdown" notice is written to stdout by its signal
    # handler, not logged: it stays text.)
    lines = [
        ln
        for ln in (tmp_path / "worker0.log").read_text().splitlines()
        if ln.strip() and not ln.startswith("worker: Warm shutdown")
    ]
    records = [json.loads(ln) for ln in lines]  # fails on any line that is not JSON
    assert all({"timestamp", "level", "logger", "event"} <= r.keys() for r in records)
    (task_line,) = [r for r in records if r["event"] == "extracted 3 rows"]
    assert {k: task_line[k] for k in ("dag_id", "run_id", "task_id", "map_index", "try_number")} == {
        "dag_id": "traced",
        "run_id": run_id,
        "task_id": "extract",
        "map_index": -1,
        "try_number": 1,
    }
    # And in the task's own log file, the logging record is JSON with the ids too.
    logs = {p.parent.name: p for p in (tmp_path / "logs").rglob("attempt=1.log")}
    extract_log = logs["task_id=extract"].read_text().splitlines()
    (record,) = [json.loads(ln) for ln in extract_log if ln.startswith("{")]
    assert (
        record["event"] == "extracted 3 rows" and record["task_id"] == "extract" and record["try_number"] == 1
    )


def control_trigger(c, scheduler) -> str:
    from millstream import control

    c.wait_parsed("traced")
    run_id = control.trigger(c.store, "traced")
    scheduler.nudge()
    return run_id


def _run_state(c, run_id: str) -> str | None:
    from millstream.store import runs as runs_q

    with c.store.read() as conn:
        s = runs_q.get_run(conn, "traced", run_id)["state"]
    return s if s in ("success", "failed") else None


def test_standalone_with_json_logs_and_traces(tmp_path: Path) -> None:
    """``millstream standalone`` as a user runs it, with ``[logging] format = "json"`` (the
    same as ``json_logs = true``) and ``[traces]`` in millstream.toml: the process's log lines are JSON objects, the logging
    records in the task's log file are JSON with the instance's ids, and the scheduler's
    spans (sent by its exporter process) and the task's (sent by the local worker) reach
    the collector as one tree."""
    home, dags = tmp_path / "home", tmp_path / "dags"
    home.mkdir()
    dags.mkdir()
    (dags / "talk.py").write_text(
        textwrap.dedent(
            """
            import logging
            from opentelemetry import trace
            from millstream import dag, task

            @dag(schedule=None)
            def talk():
                @task
                def say():
                    print("printed as is")
                    logging.getLogger("user.code").info("hello from %s", "say")
                    with trace.get_tracer("user.code").start_as_current_span("say.own"):
                        pass

                say()

            talk()
            """
        )
    )
    env = {
        **os.environ,
        "MILLSTREAM_HOME": str(home),
        "MILLSTREAM_DAGS_FOLDER": str(dags),
        "MILLSTREAM_LOG_LEVEL": "INFO",
        "MILLSTREAM__CORE__PARALLELISM": "2",
    }
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"):
        env.pop(name, None)  # the settings' otel_host and otel_port say where
    with OtlpReceiver() as receiver:
        host, port = receiver.server.server_address[:2]
        (home / "millstream.toml").write_text(
            '[logging]\nformat = "json"\n\n'
            f'[traces]\notel_on = true\notel_host = "{host}"\notel_port = {port}\n'
        )
        cmd = ["standalone", "--trigger", "talk", "--exit-after-run", "--no-api"]
        p = subprocess.run(
            [sys.executable, "-m", "millstream.cli", *cmd],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert p.returncode == 0, p.stdout + p.stderr
        # The scheduler's exporter has flushed (the process waited for it); the worker's
        # batch went out at its exit.
        wait_for(lambda: receiver.named("say.own") and receiver.named("dag_run.talk"), 30, "spans")
    (run,) = receiver.named("dag_run.talk")
    (ti,) = receiver.named("task_instance.say")
    (attempt,) = receiver.named("task_run.say")
    (own,) = receiver.named("say.own")
    assert run.parent_span_id is None and {s.trace_id for s in (ti, attempt, own)} == {run.trace_id}
    assert (ti.parent_span_id, attempt.parent_span_id, own.parent_span_id) == (
        run.span_id,
        ti.span_id,
        attempt.span_id,
    )
    assert {s.service for s in receiver.spans} == {"millstream"}  # [traces] otel_service

    assert "Run manual__" in p.stdout and "success" in p.stdout, p.stdout
    records = [json.loads(ln) for ln in p.stderr.splitlines() if ln.strip()]  # every line is JSON
    assert any(r["logger"].startswith("millstream.scheduler") for r in records), p.stderr
    assert all(r["level"] in {"debug", "info", "warning", "error", "critical"} for r in records)
    (log,) = list((home / "logs").rglob("attempt=1.log"))
    lines = log.read_text().splitlines()
    assert "printed as is" in lines  # print output stays as the task printed it
    (record,) = [json.loads(ln) for ln in lines if ln.startswith("{")]
    assert record["event"] == "hello from say" and record["logger"] == "user.code"
    assert (record["dag_id"], record["task_id"], record["map_index"], record["try_number"]) == (
        "talk",
        "say",
        -1,
        1,
    )
    assert record["run_id"].startswith("manual__")


def test_with_traces_off_no_opentelemetry_sdk_is_loaded(tmp_path: Path) -> None:
    """Off (the default), a run in this process never imports the SDK, nor does the worker
    runner: the hooks are a check of one flag."""
    code = textwrap.dedent(
        """
        import sys
        from millstream import dag, task

        @dag(schedule=None)
        def quiet():
            @task
            def a():
                return 1
            a()

        assert quiet().test().state == "success"
        import millstream.worker.runner, millstream.executors.local, millstream.executors.celery
        loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk", "millstream.worker.otel")))
        assert not loaded, loaded
        """
    )
    env = {**os.environ, "MILLSTREAM_HOME": str(tmp_path)}
    env.pop("MILLSTREAM__TRACES__OTEL_ON", None)
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
