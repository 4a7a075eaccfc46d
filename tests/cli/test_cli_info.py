"""Airflow's everyday commands: ``tasks test | list | state``, ``dags show | details |
next-execution | report | reserialize``, and ``--output json|yaml`` on list commands.

In-process through click's runner (each command is what ``millstream …`` runs), with a
real home, DAG folder and SQLite store; the run whose results ``tasks test`` reads is
made by the real scheduler with the inline executor.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner, Result
from croniter import croniter

from millstream import control
from millstream.cli import main
from millstream.executors.inline import InlineExecutor
from millstream.scheduler.loop import Scheduler
from millstream.scheduler.parsing import DagFolder
from millstream.sdk.loader import load_file
from millstream.settings import Settings
from millstream.store import Store, ensure_schema
from millstream.store import runs as runs_q
from millstream.store.tables import metadata
from millstream.worker.results import ResultReader

CRON = "30 4 * * 1"

DAGS = f'''
from datetime import datetime, timezone
from millstream import Label, dag, setup, task, task_group, teardown

@dag(schedule=None, start_date=datetime(2025, 1, 1, tzinfo=timezone.utc), tags=["demo"], description="shown")
def shapes():
    @task
    def up():
        print("hello from up")
        return 41

    @task
    def down(x):
        print("got", x)
        return x + 1

    @task_group
    def outer():
        @task_group
        def inner():
            @task
            def leaf():
                return 1
            leaf()
        @task
        def mid():
            return 2
        inner() >> mid()

    @setup
    @task
    def make():
        return "made"

    @teardown
    @task
    def drop():
        return "dropped"

    @task
    def boom():
        print("before boom")
        1 / 0

    m = make()
    u = up()
    d = down(u)
    u >> Label("the answer") >> d
    m >> d >> drop().as_teardown(setups=m)
    outer()
    boom()

shapes()

@dag(schedule="{CRON}", start_date=datetime(2025, 1, 1, tzinfo=timezone.utc), catchup=False)
def weekly():
    @task
    def t():
        return None
    t()

weekly()
'''


class Cli:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.dags = home / "dags"
        self.dags.mkdir(parents=True)
        (self.dags / "shapes.py").write_text(DAGS)
        self.env = {"MILLSTREAM_HOME": str(home), "MILLSTREAM_DAGS_FOLDER": str(self.dags)}
        self.url = Settings.load(environ=self.env).database_url

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(main, list(args), env=self.env)
        assert result.exit_code == code, (result.output, result.stderr, result.exception)
        return result

    def store(self) -> Store:
        store = Store(self.url)
        ensure_schema(store)
        return store

    def dump(self) -> dict[str, list[tuple[object, ...]]]:
        """Every row of every table: what "records nothing" compares."""
        store = self.store()
        with store.read() as conn:
            out = {
                t.name: sorted(map(tuple, conn.execute(sa.select(t))), key=repr)
                for t in metadata.sorted_tables
            }
        store.dispose()
        return out


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    c = Cli(tmp_path / "home")
    c("dags", "reserialize")
    return c


def run_shapes(cli: Cli) -> None:
    """Run ``shapes`` to its end as run ``r1`` in the configured store."""
    store = cli.store()
    loaded = load_file(cli.dags / "shapes.py").dags
    scheduler = Scheduler(
        store,
        InlineExecutor(lambda fileloc, dag_id: loaded[dag_id], ResultReader(store)),
        logs_folder=str(cli.home / "logs"),
        dag_folder=DagFolder(cli.dags, 30),
        paused_on_creation=False,
    )
    try:
        scheduler.refresh_dags()
        control.trigger(store, "shapes", run_id="r1")
        scheduler.run_until(lambda: _run_state(store) not in ("queued", "running"), timeout=60)
    finally:
        scheduler.close()
        store.dispose()


def _run_state(store: Store) -> str:
    with store.read() as conn:
        return str(runs_q.get_run(conn, "shapes", "r1")["state"])


def test_tasks_test_runs_one_instance_prints_its_log_and_records_nothing(cli: Cli) -> None:
    run_shapes(cli)
    before = cli.dump()
    # With the run: the upstream result is the run's.
    out = cli("tasks", "test", "shapes", "down", "r1").stdout
    assert "got 41" in out and "Returned value was: 42" in out and "Task shapes.down: success" in out
    # Without one, an upstream result is None, as in Airflow: the task fails, exit 1.
    failed = cli("tasks", "test", "shapes", "down", "2025-03-01", code=1).stdout
    assert "got None" in failed and "TypeError" in failed and "Task shapes.down: failed" in failed
    boom = cli("tasks", "test", "shapes", "boom", code=1).stdout
    assert "before boom" in boom and "Traceback" in boom and "ZeroDivisionError: division by zero" in boom
    assert cli.dump() == before
    assert not list((cli.home / "logs").glob("**/run_id=manual__2025-03-01*"))
    # tasks state reads the store, by run id or by the run's logical date.
    assert cli("tasks", "state", "shapes", "down", "r1").stdout == "success\n"
    assert cli("tasks", "state", "shapes", "boom", "r1").stdout == "failed\n"
    store = cli.store()
    with store.read() as conn:
        logical = runs_q.get_run(conn, "shapes", "r1")["logical_date"]
    store.dispose()
    assert cli("tasks", "state", "shapes", "up", logical.isoformat()).stdout == "success\n"


class TestReading:
    """Commands that only read: one home for the class (a home costs a migration and a parse)."""

    @pytest.fixture(scope="class")
    @classmethod
    def cli(cls, tmp_path_factory: pytest.TempPathFactory) -> Cli:
        c = Cli(tmp_path_factory.mktemp("info") / "home")
        c("dags", "reserialize")
        return c

    @pytest.mark.parametrize(
        ("args", "code", "message"),
        [
            (("tasks", "test", "shapes", "nope"), 1, "DAG 'shapes' has no task 'nope'"),
            (("tasks", "test", "nope", "x"), 1, "no DAG 'nope'"),
            (("tasks", "test", "shapes", "up", "-m"), 2, "--post-mortem is not supported"),
            (("tasks", "test", "shapes", "up", "-t", "[1]"), 2, "must be a JSON object"),
            (("tasks", "test", "shapes", "up", "--map-index", "0"), 2, "is not mapped"),
            (("tasks", "list", "shapes", "-B", "other"), 2, "one DAG bundle, 'dags-folder'"),
            (("tasks", "list", "nope"), 1, "no DAG with id 'nope'"),
            (("tasks", "state", "shapes", "up", "nope"), 1, "DagRun for shapes with run_id or logical_date"),
            (("dags", "show", "nope"), 1, "no DAG with id 'nope'"),
            (("dags", "show", "shapes", "--save", "x.png", "--imgcat"), 2, "mutually exclusive"),
            (("dags", "details", "nope"), 1, "no DAG with id 'nope'"),
            (("dags", "next-execution", "nope"), 1, "no DAG with id 'nope'"),
            (
                ("dags", "next-execution", "weekly", "--table", "--field", "run_after"),
                2,
                "--table and --field",
            ),
            (
                ("dags", "next-execution", "weekly", "--field", "partition_key"),
                2,
                "no partitioned timetables",
            ),
        ],
    )
    def test_bad_input_is_refused_with_what_to_do(
        self, cli: Cli, args: tuple[str, ...], code: int, message: str
    ) -> None:
        result = cli(*args, code=code)
        assert message in result.stderr
        assert "Traceback" not in result.stderr

    def test_dags_show_prints_dot_and_mermaid_with_groups_and_setup_edges(
        self, cli: Cli, tmp_path: Path
    ) -> None:
        dot = cli("dags", "show", "shapes").stdout
        assert dot.startswith("digraph shapes {\n") and dot.endswith("}\n")
        assert dot.count("{") == dot.count("}")
        edges = set(re.findall(r'^\t("?[\w.]+"?) -> ("?[\w.]+"?)', dot, re.M))
        unquote = {(a.strip('"'), b.strip('"')) for a, b in edges}
        assert unquote == {
            ("up", "down"),
            ("make", "down"),
            ("down", "drop"),
            ("make", "drop"),
            ("outer.inner.leaf", "outer.mid"),
        }
        assert "\tmake -> drop [style=dashed]" in dot and 'up -> down [label="the answer"]' in dot
        # outer.inner nests inside outer, and its task inside it.
        outer = dot.index("subgraph cluster_outer {")
        inner = dot.index('subgraph "cluster_outer.inner" {')
        leaf = dot.index('"outer.inner.leaf" [')
        assert outer < inner < leaf
        mermaid = cli("dags", "show", "shapes", "--mermaid").stdout
        lines = mermaid.splitlines()
        assert lines[0] == "flowchart LR"
        assert sum(line.strip().startswith("subgraph") for line in lines) == 2
        assert sum(line.strip() == "end" for line in lines) == 2
        ids = dict(re.findall(r'^\s+(t\d+)\["([^"]+)"\]', mermaid, re.M))
        by_label = {v: k for k, v in ids.items()}
        assert f"    {by_label['make']} -.-> {by_label['drop']}" in lines
        assert f'    {by_label["up"]} -->|"the answer"| {by_label["down"]}' in lines
        assert f"class {by_label['make']} setup" in mermaid
        saved = tmp_path / "g.mmd"
        assert cli("dags", "show", "shapes", "--save", str(saved)).stdout == f"File {saved} saved\n"
        assert saved.read_text() == mermaid

    def test_details_list_and_report_as_json_and_yaml(self, cli: Cli) -> None:
        details = json.loads(cli("dags", "details", "shapes", "-o", "json").stdout)
        assert yaml.safe_load(cli("dags", "details", "shapes", "-o", "yaml").stdout) == details
        d = details[0]
        assert (
            d["dag_id"] == "shapes" and d["description"] == "shown" and d["relative_fileloc"] == "shapes.py"
        )
        assert d["timetable_summary"] == "None" and d["timetable_periodic"] is False
        assert d["tags"] == [{"name": "demo", "dag_id": "shapes", "dag_display_name": "shapes"}]
        assert "property_name" in cli("dags", "details", "shapes").stdout
        assert cli("tasks", "list", "shapes").stdout.splitlines() == sorted(
            ["up", "down", "outer.inner.leaf", "outer.mid", "make", "drop", "boom"]
        )
        tasks = yaml.safe_load(cli("tasks", "list", "shapes", "-o", "yaml").stdout)
        assert next(t for t in tasks if t["task_id"] == "make")["is_setup"] is True
        report = json.loads(cli("dags", "report", "-o", "json").stdout)
        assert [(r["file"], r["dag_num"], r["task_num"], r["dags"]) for r in report] == [
            ("shapes.py", 2, 8, ["shapes", "weekly"])
        ]
        assert re.fullmatch(r"\d+:\d\d:\d\d(\.\d+)?", report[0]["duration"])
        for args in (
            ("pools", "list"),
            ("dags", "list"),
            ("dags", "list-runs", "shapes"),
            ("backfill", "list"),
        ):
            as_json = json.loads(cli(*args, "-o", "json").stdout)
            assert yaml.safe_load(cli(*args, "-o", "yaml").stdout) == as_json

    def test_next_execution_follows_the_cron(self, cli: Cli) -> None:
        def expected(now: datetime) -> list[str]:
            it = croniter(CRON, now)
            first = it.get_prev(datetime)  # catchup=False: the latest tick that passed runs
            it = croniter(CRON, first)
            return [d.isoformat() for d in [first, it.get_next(datetime), it.get_next(datetime)]]

        before = expected(datetime.now(UTC))
        result = cli("dags", "next-execution", "weekly", "-n", "3")
        assert result.stdout.splitlines() in (before, expected(datetime.now(UTC)))
        assert "PAUSED" in result.stderr
        table = cli("dags", "next-execution", "weekly", "-n", "2", "--table").stdout
        assert "data_interval.start" in table and len(table.strip().splitlines()) == 3
        none = cli("dags", "next-execution", "shapes")
        assert none.stdout == "None\n" and "No following schedule" in none.stderr
