"""Authoring assets: validation, schedules, outlets, metadata, @asset; and `dag.test()`."""

import textwrap
from datetime import datetime

import pytest

from millstream import (
    Asset,
    AssetAlias,
    AssetAll,
    AssetAny,
    AssetOrTimeSchedule,
    AssetTrigger,
    FileArrivalWatcher,
    Metadata,
    asset,
    dag,
    load_dags,
    task,
)
from millstream.core.model import DagSpec
from millstream.core.states import RunState
from millstream.errors import DagDefinitionError


def test_name_and_uri_default_to_each_other():
    assert Asset("orders").uri == "orders"
    assert Asset(uri="s3://lake/orders").name == "s3://lake/orders"
    assert Asset("orders") == Asset("orders", uri="orders")
    assert Asset("orders", uri="s3://a/x") != Asset("orders", uri="s3://a/y")
    assert len({Asset("a"), Asset("a"), Asset("b")}) == 2
    assert Asset("a").group == "asset" and Asset("a", group="g").group == "g"


def test_known_schemes_are_normalized_and_unknown_ones_kept_as_written():
    # Checked against Airflow 3.3.2: only the scheme is lower-cased, a trailing slash goes.
    assert Asset("x", uri="S3://Lake/Key/").uri == "s3://Lake/Key"
    assert Asset("S3://Lake/Key/").name == "S3://Lake/Key/"
    assert Asset("x", uri="warehouse://Sales/Orders").uri == "warehouse://Sales/Orders"
    assert Asset("x", uri="orders table").uri == "orders table"  # no scheme: an identifier


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Asset(""), "name must not be empty"),
        (lambda: Asset("   "), "name must not be empty"),
        (lambda: Asset(), "needs a name"),
        (lambda: Asset("x", uri=""), "uri must not be empty"),
        (lambda: Asset(123), "name must be a string"),
        (lambda: Asset("x", uri="s3://"), "needs a host or bucket"),
        (lambda: Asset("x", uri="file:relative.csv"), "absolute path"),
        (lambda: Asset("x", uri="millstream://x"), "reserved"),
        (lambda: Asset("x", extra={"f": object()}), "JSON-serializable"),
        (lambda: Asset("x", extra=[1]), "extra must be a dict"),
        (lambda: AssetAlias(""), "AssetAlias name"),
        (lambda: AssetTrigger(Asset("a"), policy="often"), "policy must be one of"),
        (lambda: FileArrivalWatcher("/tmp", settle_seconds=-1), "settle_seconds"),
    ],
)
def test_bad_definitions_name_the_file_and_line(make, message):
    with pytest.raises(DagDefinitionError, match=message) as err:
        make()
    assert err.value.filename == __file__
    assert err.value.lineno is not None


def test_conditions_combine_and_flatten():
    a, b, c = Asset("a"), Asset("b"), Asset("c")
    assert (a | b | c) == AssetAny(a, b, c)
    assert ((a | b) & c).to_condition() == {
        "all": [{"any": [{"asset": "a"}, {"asset": "b"}]}, {"asset": "c"}]
    }
    assert AssetAll(a, AssetAlias("x")).to_condition() == {"all": [{"asset": "a"}, {"alias": "x"}]}
    with pytest.raises(TypeError, match="another asset"):
        _ = a | "b"


def spec_of(schedule, **kw):
    @dag(schedule=schedule, **kw)
    def d():
        @task(outlets=[Asset("out")], inlets=[Asset("a")])
        def t():
            pass

        t()

    return d().to_spec()


def test_schedules_become_spec_fields_that_round_trip():
    a, b = Asset("a"), Asset("b", uri="s3://x/b")
    spec = spec_of([a, b])
    assert spec.asset_trigger == {"condition": {"all": [{"asset": "a"}, {"asset": "b"}]}, "policy": "batch"}
    assert spec.timetable == {"type": "none"}
    assert {x["name"]: x["uri"] for x in spec.assets} == {"a": "a", "b": "s3://x/b", "out": "out"}
    assert spec.tasks[0].outlets == ("asset:out",) and spec.tasks[0].inlets == ("asset:a",)
    assert DagSpec.from_json(spec.to_json()) == spec

    assert spec_of(a).asset_trigger["condition"] == {"asset": "a"}
    assert spec_of(AssetTrigger(a | b, policy="each_event")).asset_trigger["policy"] == "each_event"
    combined = spec_of(AssetOrTimeSchedule(timetable="@daily", assets=a))
    assert combined.timetable["type"] == "cron" and combined.asset_trigger["condition"] == {"asset": "a"}


def test_schedule_errors():
    with pytest.raises(DagDefinitionError, match="schedule=\\[\\] lists none"):
        spec_of(AssetTrigger([]))
    with pytest.raises(DagDefinitionError, match="must list assets"):
        spec_of(["@daily"])
    with pytest.raises(DagDefinitionError, match="not assets"):
        AssetOrTimeSchedule(timetable=Asset("a"), assets=Asset("b"))
    with pytest.raises(DagDefinitionError, match="two different assets 'a'"):

        @dag(schedule=Asset("a", uri="s3://x/1"))
        def clash():
            @task(outlets=[Asset("a", uri="s3://x/2")])
            def t():
                pass

            t()

        clash().to_spec()


def test_outlets_must_be_assets():
    with pytest.raises(DagDefinitionError, match="outlets and inlets take Asset"):

        @task(outlets=["s3://not-an-asset"])
        def t():
            pass


def test_dag_test_runs_outlets_and_metadata_without_a_scheduler(tmp_path):
    """`dag.test()` runs tasks with outlets: the events are recorded in its store."""
    out = Asset("out")

    @dag
    def producer():
        @task(outlets=[out])
        def make(outlet_events=None):
            outlet_events[out].extra = {"rows": 3}
            with pytest.raises(KeyError, match="has no outlet"):
                outlet_events[Asset("other")]
            return 7

        @task(outlets=[out])
        def gen():
            yield Metadata(out, {"rows": 4})
            return "done"

        @task(outlets=[out])
        def bad_gen():
            yield 1

        @task(outlets=[out], trigger_rule="all_done")
        def bad_extra(outlet_events=None):
            outlet_events[out].extra = {"when": datetime.now()}  # not JSON: fails this task only

        make() >> gen() >> bad_gen() >> bad_extra()

    result = producer().test()
    assert result.state is RunState.FAILED
    assert {k: v.value for k, v in result.states().items()} == {
        "make": "success",
        "gen": "success",
        "bad_gen": "failed",
        "bad_extra": "failed",
    }
    assert "may only yield Metadata" in result.ti("bad_gen").log
    assert "the extra of its event for Asset('out') is not JSON" in result.ti("bad_extra").log


def test_asset_decorator_makes_a_one_task_dag(tmp_path):
    (tmp_path / "assets.py").write_text(
        textwrap.dedent(
            """
            from millstream import asset, dag, task

            @asset(schedule="@daily", uri="s3://lake/orders", tags=["lake"])
            def orders(self, context):
                return {"name": self.name, "ds": context["ds"]}

            @dag(schedule=orders)
            def downstream():
                @task
                def t():
                    pass
                t()

            downstream()
            """
        )
    )
    dags, errors = load_dags(tmp_path)
    assert errors == []
    spec = dags["orders"].to_spec()
    assert [t.task_id for t in spec.tasks] == ["orders"]
    assert spec.tasks[0].outlets == ("asset:orders",)
    assert spec.timetable["type"] == "cron" and spec.tags == ("lake",)
    assert dags["downstream"].to_spec().asset_trigger["condition"] == {"asset": "orders"}
    result = dags["orders"].test()
    assert result.state is RunState.SUCCESS, result.ti("orders").log


def test_asset_decorator_takes_upstream_assets_as_parameters():
    """Airflow 3's pattern: a parameter named after an asset makes it an inlet."""

    @asset(schedule=None)
    def raw_orders():
        pass

    @asset(schedule=raw_orders)
    def clean_orders(self, context, raw_orders, limit=10):
        events = context["inlet_events"][raw_orders]
        return {"upstream": raw_orders.name, "limit": limit, "events": len(events)}

    spec = clean_orders.dag.to_spec()
    assert spec.tasks[0].inlets == ("asset:raw_orders",)
    assert spec.asset_trigger["condition"] == {"asset": "raw_orders"}
    result = clean_orders.dag.test()
    assert result.state is RunState.SUCCESS, result.ti("clean_orders").log
