"""`millstream assets …` as a user runs it."""

import json
import textwrap

from .test_cli import cli  # noqa: F401  (the fixture)

DAGS = textwrap.dedent(
    """
    from millstream import Asset, AssetAlias, AssetTrigger, dag, task

    raw = Asset("raw", uri="s3://lake/raw")
    clean = Asset("clean")

    @dag(schedule=None)
    def ingest():
        @task(outlets=[raw])
        def land():
            pass
        land()

    @dag(schedule=AssetTrigger(raw & AssetAlias("late"), policy="latest_only"))
    def refine():
        @task(outlets=[clean], inlets=[raw])
        def tidy():
            pass
        tidy()

    ingest(); refine()
    """
)


def test_emit_list_events_queued_graph(cli):  # noqa: F811
    (cli.dags / "assets_dags.py").write_text(DAGS)
    out = cli("assets", "emit", "raw", "--extra", '{"rows": 42}').stdout
    assert "Emitted event 1 for asset raw" in out
    cli("assets", "emit", "s3://lake/raw")  # by uri as well as by name

    listing = json.loads(cli("assets", "list", "-o", "json").stdout)
    raw = next(a for a in listing if a["name"] == "raw")
    assert raw["uri"] == "s3://lake/raw"
    assert raw["events"] == 2
    assert raw["producers"] == ["ingest.land"]
    assert raw["consumers"] == ["refine"]
    assert raw["readers"] == ["refine.tidy"]
    assert "raw" in cli("assets", "list").stdout

    events = json.loads(cli("assets", "events", "raw", "-o", "json").stdout)
    assert [e["extra"] for e in events] == [{}, {"rows": 42}]  # newest first
    assert all(e["source"] == "external" for e in events)

    queued = cli("assets", "queued", "refine").stdout
    assert "refine runs on: raw & alias late, policy latest_only" in queued
    assert "paused" in queued  # new DAGs start paused: their events wait
    assert queued.count("asset:raw") == 2

    graph = cli("assets", "graph").stdout
    assert "ingest.land -> raw -> refine" in graph
    assert "refine.tidy -> clean -> -" in graph
    assert "(external) -> alias late (alias, not resolved yet) -> refine" in graph


def test_bad_input_is_a_clear_error(cli):  # noqa: F811
    (cli.dags / "assets_dags.py").write_text(DAGS)
    p = cli("assets", "emit", "nope", ok=False)
    assert p.returncode == 1
    assert "no asset 'nope'" in p.stderr and "millstream assets list" in p.stderr
    p = cli("assets", "emit", "raw", "--extra", "{not json", ok=False)
    assert p.returncode == 1 and "--extra is not valid JSON" in p.stderr
    p = cli("assets", "emit", "raw", "--extra", "[1, 2]", ok=False)
    assert p.returncode == 1 and "--extra must be a JSON object" in p.stderr
    p = cli("assets", "queued", "ingest", ok=False)
    assert p.returncode == 1 and "not scheduled on assets" in p.stderr
    p = cli("assets", "events", "nope", ok=False)
    assert p.returncode == 1 and "no asset 'nope'" in p.stderr
