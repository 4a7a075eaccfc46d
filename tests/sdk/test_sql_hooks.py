"""The common.sql hook and operators against real databases: SQLite files, PostgreSQL and
MariaDB (the services from tests/conftest.py). No mocks: every statement runs."""

from __future__ import annotations

import json
import uuid
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from millstream import DAG, task
from millstream.core.states import RunState, TaskState
from millstream.errors import MillstreamError
from millstream.sdk import secrets
from millstream.sdk.connection import Connection, ConnectionNotFoundError
from millstream.sdk.hooks.base import BaseHook
from millstream.sdk.hooks.sql import (
    DbApiHook,
    MySqlHook,
    OptionalFeatureError,
    PostgresHook,
    SqliteHook,
    fetch_all_handler,
    fetch_one_handler,
    split_sql_string,
)
from millstream.sdk.standard.sql import (
    SQLCheckOperator,
    SQLExecuteQueryOperator,
    SqlSensor,
    SQLValueCheckOperator,
    jsonable,
)
from tests.conftest import MARIADB_URL, need_mariadb

DAY = datetime(2024, 3, 5, tzinfo=UTC)
S = TaskState


def _set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, value: dict) -> None:
    monkeypatch.setenv(f"MILLSTREAM_CONN_{conn_id.upper()}", json.dumps(value))
    secrets.reset()


@pytest.fixture(autouse=True)
def _fresh_secrets():
    secrets.reset()
    yield
    secrets.reset()


@dataclass
class Db:
    """One database under test: its connection id, a table name of its own, and how its
    driver marks positional and named parameters."""

    kind: str
    conn_id: str
    table: str
    p: str  # positional marker
    named: str  # a named marker for the name "v"

    @property
    def hook(self) -> DbApiHook:
        return BaseHook.get_connection(self.conn_id).get_hook()


def _sqlite(tmp_path, monkeypatch) -> Db:
    _set_conn(monkeypatch, "lite", {"conn_type": "sqlite", "host": str(tmp_path / "test.db")})
    return Db("sqlite", "lite", "items", "?", ":v")


def _postgres(request, monkeypatch) -> Db:
    url = sa.make_url(request.getfixturevalue("pg_url"))
    _set_conn(
        monkeypatch,
        "pg",
        {
            "conn_type": "postgres",
            "host": url.host,
            "port": url.port,
            "login": url.username,
            "schema": url.database,
            "extra": {"options": url.query["options"].replace("%3D", "=")},
        },
    )
    return Db("postgres", "pg", "items", "%s", "%(v)s")


@pytest.fixture
def mariadb(monkeypatch):
    need_mariadb()
    url = sa.make_url(MARIADB_URL)
    _set_conn(
        monkeypatch,
        "maria",
        {
            "conn_type": "mysql",
            "host": url.host,
            "port": url.port,
            "login": url.username,
            "schema": url.database,
        },
    )
    db = Db("mysql", "maria", f"ms_items_{uuid.uuid4().hex[:10]}", "%s", "%(v)s")
    yield db
    db.hook.run(f"DROP TABLE IF EXISTS {db.table}")


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def db(request, tmp_path, monkeypatch) -> Db:
    if request.param == "sqlite":
        return _sqlite(tmp_path, monkeypatch)
    if request.param == "postgres":
        return _postgres(request, monkeypatch)
    return request.getfixturevalue("mariadb")


@pytest.fixture
def lite(tmp_path, monkeypatch) -> Db:
    db = _sqlite(tmp_path, monkeypatch)
    db.hook.run(
        [
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)",
            "INSERT INTO items VALUES (1, 'apple', 3), (2, 'pear', 0), (3, 'fig', 7)",
        ]
    )
    return db


def _make_table(db: Db) -> DbApiHook:
    hook = db.hook
    hook.run(f"CREATE TABLE {db.table} (id INTEGER PRIMARY KEY, name VARCHAR(40), qty INTEGER)")
    return hook


# -- the hook ------------------------------------------------------------------------------


def test_the_connection_type_picks_the_hook(db):
    hook = db.hook
    expected = {"sqlite": SqliteHook, "postgres": PostgresHook, "mysql": MySqlHook}[db.kind]
    assert type(hook) is expected and isinstance(hook, DbApiHook)
    assert hook.get_conn_id() == db.conn_id
    assert hook.test_connection() == (True, "Connection successfully tested")
    assert hook.get_uri().startswith(
        {"sqlite": "sqlite:///", "postgres": "postgresql+psycopg://"}.get(db.kind, "mysql+pymysql://")
    )


def test_records_first_and_run_return_what_airflow_returns(db):
    hook = _make_table(db)
    assert hook.run(f"INSERT INTO {db.table} VALUES (1, 'apple', 3), (2, 'pear', 5)") is None
    rows = hook.get_records(f"SELECT id, name FROM {db.table} ORDER BY id")
    assert [tuple(r) for r in rows] == [(1, "apple"), (2, "pear")]
    assert tuple(hook.get_first(f"SELECT name, qty FROM {db.table} WHERE id = {db.p}", parameters=(2,))) == (
        "pear",
        5,
    )
    assert hook.get_first(f"SELECT name FROM {db.table} WHERE id = 99") is None
    # A string: the handler's result for it. A list: one result per statement.
    count = f"SELECT count(*) FROM {db.table}"
    assert tuple(hook.run(count, handler=fetch_one_handler)) == (2,)
    both = hook.run([count, f"SELECT max(qty) FROM {db.table}"], handler=fetch_one_handler)
    assert [tuple(r) for r in both] == [(2,), (5,)]
    # A statement with no rows gives the handler None, and its description is None.
    assert hook.run(f"UPDATE {db.table} SET qty = qty + 1", handler=fetch_all_handler) is None
    assert hook.descriptions == [None]
    hook.run(count, handler=fetch_all_handler)
    assert hook.last_description is not None and len(hook.last_description) == 1
    with pytest.raises(ValueError, match="List of SQL statements is empty"):
        hook.run("   ")


def test_parameters_in_each_style(db):
    hook = _make_table(db)
    hook.run(f"INSERT INTO {db.table} VALUES ({db.p}, {db.p}, {db.p})", parameters=(1, "it's", 2))
    named = db.named.replace("v", "name")
    hook.run(f"INSERT INTO {db.table} (id, name) VALUES (2, {named})", parameters={"name": "50% off"})
    got = hook.get_records(
        f"SELECT name FROM {db.table} WHERE id >= {db.named} ORDER BY id", parameters={"v": 1}
    )
    assert [r[0] for r in got] == ["it's", "50% off"]
    if db.kind == "sqlite":  # sqlite3 also takes :name with a mapping and ?NNN
        assert hook.get_first("SELECT ?1 + ?1", parameters=(4,)) == (8,)
    else:  # without parameters a % is not a marker, as in Airflow
        assert tuple(hook.get_first("SELECT '100%'")) == ("100%",)


def test_insert_rows_in_batches_and_replace(db):
    hook = _make_table(db)
    hook.insert_rows(db.table, ((i, f"n{i}", i * 10) for i in range(1, 6)), commit_every=2)
    hook.insert_rows(db.table, [(6, "six")], target_fields=["id", "name"])
    rows = hook.get_records(f"SELECT id, name, qty FROM {db.table} ORDER BY id")
    assert [(int(r[0]), r[1], None if r[2] is None else int(r[2])) for r in rows] == [
        (1, "n1", 10),
        (2, "n2", 20),
        (3, "n3", 30),
        (4, "n4", 40),
        (5, "n5", 50),
        (6, "six", None),
    ]
    extra = {"replace_index": "id"} if db.kind == "postgres" else {}
    hook.insert_rows(db.table, [(2, "two", 2)], target_fields=["id", "name", "qty"], replace=True, **extra)
    assert tuple(hook.get_first(f"SELECT name, qty FROM {db.table} WHERE id = 2")) == ("two", 2)
    assert hook.get_first(f"SELECT count(*) FROM {db.table}")[0] == 6


def test_postgres_upsert_needs_columns_and_an_index(request, monkeypatch):
    db = _postgres(request, monkeypatch)
    hook = _make_table(db)
    with pytest.raises(ValueError, match="requires an unique index"):
        hook.insert_rows(db.table, [(1, "a", 1)], target_fields=["id", "name", "qty"], replace=True)
    hook.insert_rows(db.table, [(1,)], target_fields=["id"], replace=True, replace_index=["id"])
    hook.insert_rows(db.table, [(1,)], target_fields=["id"], replace=True, replace_index=["id"])  # DO NOTHING
    assert hook.get_records(f"SELECT id FROM {db.table}") == [(1,)]


def test_split_statements_respects_quotes_and_comments(db):
    hook = _make_table(db)
    script = f"""
        -- load two rows; the comment's semicolon is not a statement end
        INSERT INTO {db.table} VALUES (1, 'a;b', 1);
        /* block; comment */ INSERT INTO {db.table} VALUES (2, 'it''s;', 2);
        SELECT name FROM {db.table} ORDER BY id;
    """
    last = hook.run(script, split_statements=True, handler=fetch_all_handler)
    assert [r[0] for r in last] == ["a;b", "it's;"]
    each = hook.run(
        f"SELECT 1; SELECT count(*) FROM {db.table};",
        split_statements=True,
        return_last=False,
        handler=fetch_one_handler,
    )
    assert [tuple(r) for r in each] == [(1,), (2,)]


def test_split_sql_string():
    assert split_sql_string("select 1; select 'x;y' ;\n-- c; d\n;") == ["select 1;", "select 'x;y' ;"]
    assert split_sql_string("select 1;select 2", strip_semicolon=True) == ["select 1", "select 2"]
    body = "create function f() returns int as $body$ begin return 1; end; $body$ language plpgsql;"
    assert split_sql_string(body + " select f();") == [body, "select f();"]
    assert split_sql_string("select \"a;b\", `c;d`, 'e\\';f'; select 2") == [
        "select \"a;b\", `c;d`, 'e\\';f';",
        "select 2",
    ]
    assert split_sql_string("select 1 # no; more\n", hash_comments=True) == ["select 1"]
    assert split_sql_string("select a # b from t; select 2") == ["select a # b from t;", "select 2"]


def test_autocommit_keeps_what_ran_before_a_failure(db):
    hook = _make_table(db)
    bad = "SELECT * FROM no_such_table_here"
    with pytest.raises(Exception, match="no_such_table_here"):
        hook.run([f"INSERT INTO {db.table} VALUES (1, 'kept', 1)", bad], autocommit=True)
    with pytest.raises(Exception, match="no_such_table_here"):
        hook.run([f"INSERT INTO {db.table} VALUES (2, 'rolled back', 1)", bad])
    assert [r[0] for r in hook.get_records(f"SELECT name FROM {db.table}")] == ["kept"]
    # get_conn() gives the driver's own connection, as Airflow's does; its autocommit switch works.
    with closing(hook.get_conn()) as conn:
        driver = {"postgres": "psycopg", "mysql": "pymysql", "sqlite": "sqlite3"}[db.kind]
        assert type(conn).__module__.split(".")[0] == driver
        hook.set_autocommit(conn, True)
        assert hook.get_autocommit(conn) is True
        cur = conn.cursor()
        cur.execute(f"INSERT INTO {db.table} VALUES (3, 'auto', 1)")
        cur.close()
    assert hook.get_first(f"SELECT count(*) FROM {db.table}")[0] == 2


def test_a_failing_statement_says_where(db):
    hook = db.hook
    with pytest.raises(Exception) as info:
        hook.run("SELEC 1")
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert f"while running on connection {db.conn_id!r} ({db.kind}): SELEC 1" in notes
    assert type(info.value).__module__.split(".")[0] in ("sqlite3", "psycopg", "pymysql")
    with pytest.raises(Exception) as info:
        hook.run(f"SELECT {db.p}", parameters=(1, 2))
    style = "? or :name" if db.kind == "sqlite" else "%s or %(name)s"
    assert f"this driver marks parameters with {style}" in info.value.__notes__[-1]


def test_sqlite_hints_at_split_statements(lite):
    with pytest.raises(Exception) as info:
        lite.hook.run("SELECT 1; SELECT 2")
    assert "pass split_statements=True" in info.value.__notes__[0]


def test_hooks_take_airflows_argument_names(lite, monkeypatch, tmp_path):
    hook = SqliteHook(sqlite_conn_id="lite")
    assert hook.get_first("SELECT count(*) FROM items") == (3,)
    assert SqliteHook("lite").get_conn_id() == "lite"
    assert SqliteHook().get_conn_id() == "sqlite_default"
    assert PostgresHook().get_conn_id() == "postgres_default"
    assert MySqlHook(mysql_conn_id="m").get_conn_id() == "m"
    with pytest.raises(ConnectionNotFoundError, match="sqlite_default.*MILLSTREAM_CONN_SQLITE_DEFAULT"):
        SqliteHook().get_records("SELECT 1")
    _set_conn(monkeypatch, "nowhere", {"conn_type": "sqlite"})
    with pytest.raises(MillstreamError, match="'nowhere' \\(sqlite\\) names no database file: set its host"):
        SqliteHook("nowhere").get_records("SELECT 1")
    _set_conn(monkeypatch, "web", {"conn_type": "http", "host": "example.com"})
    with pytest.raises(MillstreamError, match="conn_type 'http'"):
        DbApiHook(conn_id="web").get_records("SELECT 1")


def test_sqlite_memory_keeps_its_tables_for_the_hook():
    hook = DbApiHook.from_connection(Connection(conn_id="mem", conn_type="sqlite", host=":memory:"))
    assert isinstance(hook, SqliteHook) and hook.get_uri() == "sqlite://"
    hook.run("CREATE TABLE t (a)")
    hook.insert_rows("t", [(1,), (None,)])
    # As Airflow's DbApiHook does for SQLite, cells are sent as text.
    assert hook.get_records("SELECT a FROM t") == [("1",), (None,)]


def test_a_server_that_is_not_there_says_which_connection(monkeypatch):
    _set_conn(monkeypatch, "gone", {"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "x"})
    with pytest.raises(Exception) as info:
        PostgresHook("gone").get_records("SELECT 1")
    assert "for connection 'gone': check the connection's host" in info.value.__notes__[-1]
    ok, message = PostgresHook("gone").test_connection()
    assert not ok and message


def test_get_df_says_when_pandas_is_missing(lite):
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(OptionalFeatureError, match="pandas library not installed"):
            lite.hook.get_pandas_df("SELECT 1")
    else:
        assert lite.hook.get_df("SELECT id FROM items").shape == (3, 1)


def test_jsonable_turns_database_types_into_json():
    assert jsonable([(Decimal("2"), Decimal("1.5"), uuid.UUID(int=1), b"ab")]) == [
        [2, 1.5, "00000000-0000-0000-0000-000000000001", "ab"]
    ]


# -- operators and the sensor in DAG runs --------------------------------------------------


def test_execute_query_operator_returns_rows_to_downstream_tasks(lite, tmp_path):
    (tmp_path / "report.sql").write_text(
        "SELECT '{{ ds }}', name FROM items WHERE qty >= {{ params.min_qty }} ORDER BY id"
    )
    got = {}
    with DAG("sql_exec", schedule=None, start_date=DAY, template_searchpath=str(tmp_path)) as d:
        make = SQLExecuteQueryOperator(
            task_id="make",
            conn_id="lite",
            sql=["CREATE TABLE more (v INTEGER)", "INSERT INTO more VALUES (1)", "SELECT v FROM more"],
        )
        report = SQLExecuteQueryOperator(
            task_id="report", conn_id="lite", sql="report.sql", params={"min_qty": 1}
        )
        split = SQLExecuteQueryOperator(
            task_id="split",
            conn_id="lite",
            sql="SELECT count(*) FROM items WHERE name != ?; SELECT max(qty) FROM items WHERE name != ?;",
            parameters=["{{ params.skip }}"],
            params={"skip": "fig"},
            split_statements=True,
            return_last=False,
        )
        quiet = SQLExecuteQueryOperator(task_id="quiet", conn_id="lite", sql="SELECT 1", do_xcom_push=False)

        @task
        def collect(make, report, split, quiet):
            got.update(make=make, report=report, split=split, quiet=quiet)

        collect(make.output, report.output, split.output, quiet.output)
    run = d.test(logical_date=DAY)
    assert run.state is RunState.SUCCESS, [(t.task_id, t.reason) for t in run.task_instances]
    assert got == {
        "make": [None, None, [[1]]],
        "report": [["2024-03-05", "apple"], ["2024-03-05", "fig"]],
        "split": [[[2]], [[3]]],
        "quiet": None,
    }
    assert run.ti("report").rendered["sql"].startswith("SELECT '2024-03-05', name FROM items WHERE qty >= 1")
    assert "returned:" not in run.ti("report").log  # show_return_value_in_logs=False, as Airflow


def test_execute_query_operator_on_postgres_with_output_processor(request, monkeypatch):
    db = _postgres(request, monkeypatch)
    _make_table(db)

    def as_dicts(results, descriptions):
        return [
            [dict(zip([c[0] for c in desc], row, strict=True)) for row in res]
            for res, desc in zip(results, descriptions, strict=True)
        ]

    got = []
    with DAG("sql_pg", schedule=None, start_date=DAY) as d:
        ins = SQLExecuteQueryOperator(
            task_id="ins",
            conn_id="pg",
            sql=f"INSERT INTO {db.table} VALUES (%(id)s, %(name)s, 4); SELECT sum(qty)::numeric AS total, name FROM {db.table} GROUP BY name",
            parameters={"id": 1, "name": "{{ ds }}"},
            output_processor=as_dicts,
            show_return_value_in_logs=True,
        )

        @task
        def keep(value):
            got.append(value)

        keep(ins.output)
    run = d.test(logical_date=DAY)
    assert run.state is RunState.SUCCESS, run.ti("ins").reason
    assert got == [[{"total": 4, "name": "2024-03-05"}]]  # the sum's Decimal stored as a number
    assert "returned:" in run.ti("ins").log


def test_execute_query_operator_fails_clearly(lite, tmp_path):
    with DAG("sql_bad", schedule=None, start_date=DAY) as d:
        SQLExecuteQueryOperator(task_id="bad", conn_id="lite", sql="SELECT nope FROM items")
        SQLExecuteQueryOperator(task_id="unknown", conn_id="not_defined", sql="SELECT 1")
        SQLExecuteQueryOperator(task_id="none", sql="SELECT 1")
    run = d.test(logical_date=DAY)
    assert "no such column: nope" in run.ti("bad").reason
    assert "while running on connection 'lite' (sqlite): SELECT nope FROM items" in run.ti("bad").log
    assert "`not_defined` isn't defined" in run.ti("unknown").reason
    assert "needs conn_id=" in run.ti("none").reason


def test_sql_check_operator(lite):
    with DAG("sql_check", schedule=None, start_date=DAY) as d:
        SQLCheckOperator(task_id="ok", conn_id="lite", sql="SELECT count(*), min(id) FROM items")
        SQLCheckOperator(
            task_id="falsy", conn_id="lite", sql="SELECT qty FROM items WHERE id = ?", parameters=[2]
        )
        SQLCheckOperator(
            task_id="empty", conn_id="lite", sql="SELECT 1 FROM items WHERE id > 10", retries=1, retry_delay=0
        )
        SQLCheckOperator(
            task_id="no_retry", conn_id="lite", sql="SELECT 0", retries=2, retry_on_failure=False
        )
    run = d.test(logical_date=DAY)
    assert run.ti("ok").state is S.SUCCESS
    assert run.ti("falsy").state is S.FAILED
    assert (
        "Test failed.\nQuery:\nSELECT qty FROM items WHERE id = ?\nResults:\n(0,)" in run.ti("falsy").reason
    )
    assert "returned zero rows: SELECT 1 FROM items WHERE id > 10" in run.ti("empty").reason
    assert run.ti("empty").try_number == 2  # retried, as an AirflowException is
    assert run.ti("no_retry").state is S.FAILED and run.ti("no_retry").try_number == 1


def test_sql_value_check_operator(lite):
    with DAG("sql_value", schedule=None, start_date=DAY) as d:
        SQLValueCheckOperator(
            task_id="exact", conn_id="lite", sql="SELECT sum(qty) FROM items", pass_value=10
        )
        SQLValueCheckOperator(
            task_id="within",
            conn_id="lite",
            sql="SELECT sum(qty), 11 FROM items",
            pass_value="{{ 10 }}",
            tolerance=0.1,
        )
        SQLValueCheckOperator(
            task_id="outside",
            conn_id="lite",
            sql="SELECT sum(qty) FROM items",
            pass_value=12,
            tolerance="0.1",
        )
        SQLValueCheckOperator(
            task_id="text", conn_id="lite", sql="SELECT name FROM items WHERE id = 1", pass_value="apple"
        )
        SQLValueCheckOperator(
            task_id="not_text", conn_id="lite", sql="SELECT name FROM items WHERE id = 2", pass_value="apple"
        )
        SQLValueCheckOperator(
            task_id="not_number", conn_id="lite", sql="SELECT name FROM items", pass_value=1
        )
    run = d.test(logical_date=DAY)
    assert run.states() == {
        "exact": S.SUCCESS,
        "within": S.SUCCESS,
        "outside": S.FAILED,
        "text": S.SUCCESS,
        "not_text": S.FAILED,
        "not_number": S.FAILED,
    }
    assert (
        "Pass value:12.0\nTolerance:10.0%\nQuery:\nSELECT sum(qty) FROM items\nResults:\n(10,)"
        in run.ti("outside").reason
    )
    assert "Converting a result to float failed" in run.ti("not_number").reason


def test_sql_sensor(lite):
    seen = []

    def arrives_on_second_poke(value):
        seen.append(value)
        if len(seen) == 1:  # the row the sensor waits for lands between two pokes
            lite.hook.run("UPDATE items SET qty = 5 WHERE id = 2")
            return False
        return value == 5

    fast = {"poke_interval": 0.01, "timeout": 10}
    with DAG("sql_sensor", schedule=None, start_date=DAY) as d:
        SqlSensor(task_id="truthy", conn_id="lite", sql="SELECT qty FROM items WHERE id = 1", **fast)
        SqlSensor(
            task_id="waits",
            conn_id="lite",
            sql="SELECT name, qty FROM items WHERE id = {{ params.id }}",
            params={"id": 2},
            selector=lambda row: row[1],
            success=arrives_on_second_poke,
            **fast,
        )
        SqlSensor(
            task_id="fails",
            conn_id="lite",
            sql="SELECT qty FROM items WHERE id = ?",
            parameters=[3],
            failure=lambda v: v > 5,
            **fast,
        )
        SqlSensor(
            task_id="empty", conn_id="lite", sql="SELECT 1 FROM items WHERE 0", fail_on_empty=True, **fast
        )
        SqlSensor(
            task_id="times_out",
            conn_id="lite",
            sql="SELECT 1 FROM items WHERE 0",
            poke_interval=0.01,
            timeout=0.03,
        )
    run = d.test(logical_date=DAY)
    assert run.states() == {
        "truthy": S.SUCCESS,
        "waits": S.SUCCESS,
        "fails": S.FAILED,
        "empty": S.FAILED,
        "times_out": S.FAILED,
    }
    assert seen == [0, 5]
    assert "Failure criteria met. self.failure(7) returned True" in run.ti("fails").reason
    assert "No rows returned, raising as per fail_on_empty flag" in run.ti("empty").reason
    assert "not satisfied after" in run.ti("times_out").reason


def test_sql_sensor_on_mariadb(mariadb):
    hook = _make_table(mariadb)
    hook.insert_rows(mariadb.table, [(1, "ready", 1)])
    with DAG("sql_sensor_maria", schedule=None, start_date=DAY) as d:
        SqlSensor(
            task_id="ready",
            conn_id=mariadb.conn_id,
            sql=f"SELECT name FROM {mariadb.table} WHERE id = %s",
            parameters=(1,),
            success=lambda v: v == "ready",
            poke_interval=0.01,
            timeout=10,
        )
        SQLValueCheckOperator(
            task_id="qty", conn_id=mariadb.conn_id, sql=f"SELECT qty FROM {mariadb.table}", pass_value=1
        )
    run = d.test(logical_date=DAY)
    assert run.states() == {"ready": S.SUCCESS, "qty": S.SUCCESS}


def test_execute_query_operator_maps_over_statements(lite):
    got = []
    with DAG("sql_mapped", schedule=None, start_date=DAY) as d:
        counts = SQLExecuteQueryOperator.partial(
            task_id="counts", conn_id="lite", handler=fetch_one_handler
        ).expand(sql=["SELECT count(*) FROM items", "SELECT max(qty) FROM items"])

        @task
        def keep(values):
            got.extend(values)

        keep(counts.output)
    run = d.test(logical_date=DAY)
    assert run.state is RunState.SUCCESS, [(t.task_id, t.reason) for t in run.task_instances]
    assert got == [[3], [7]]
