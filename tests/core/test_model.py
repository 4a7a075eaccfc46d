from hypothesis import given
from hypothesis import strategies as st

from millstream.core.model import DagSpec, InputRef, MapSource, TaskSpec
from millstream.core.trigger_rules import TriggerRule

ids = st.text(alphabet="abcdefgh_", min_size=1, max_size=8)


@st.composite
def specs(draw):
    n = draw(st.integers(1, 6))
    names = [f"t{i}" for i in range(n)]
    tasks = []
    for i, name in enumerate(names):
        ups = tuple(sorted(draw(st.sets(st.sampled_from(names[:i]), max_size=i)))) if i else ()
        tasks.append(
            TaskSpec(
                task_id=name,
                upstream=ups,
                trigger_rule=draw(st.sampled_from(list(TriggerRule))),
                retries=draw(st.integers(0, 5)),
                retry_delay=draw(st.floats(0, 1000)),
                retry_exponential_backoff=draw(st.sampled_from([0.0, 2.0, 1.5])),
                max_retry_delay=draw(st.one_of(st.none(), st.floats(1, 100))),
                execution_timeout=draw(st.one_of(st.none(), st.floats(1, 100))),
                pool=draw(st.one_of(st.none(), ids)),
                priority_weight=draw(st.integers(1, 10)),
                max_active_tis_per_dagrun=draw(st.one_of(st.none(), st.integers(1, 5))),
                map_sources=(MapSource("x", task_id=ups[0]),) if ups and draw(st.booleans()) else (),
                inputs=(InputRef("y", ups[-1]),) if ups else (),
                map_index_template=draw(st.one_of(st.none(), st.just("{x}"))),
                group_id=draw(st.one_of(st.none(), ids)),
                is_setup=draw(st.booleans()),
                multiple_outputs=draw(st.booleans()),
                doc=draw(st.one_of(st.none(), st.text(max_size=20))),
                lineno=draw(st.one_of(st.none(), st.integers(1, 500))),
            )
        )
    return DagSpec(
        dag_id=draw(ids),
        tasks=tuple(tasks),
        fileloc="/dags/x.py",
        timetable=draw(st.sampled_from([{"type": "none"}, {"type": "cron", "expr": "@daily", "tz": "UTC"}])),
        start_date=draw(st.one_of(st.none(), st.just("2025-01-01T00:00:00+00:00"))),
        catchup=draw(st.booleans()),
        max_active_runs=draw(st.integers(1, 20)),
        max_active_tasks=draw(st.integers(1, 20)),
        dagrun_timeout=draw(st.one_of(st.none(), st.floats(1, 100))),
        params={"n": {"default": 3, "schema": {"type": "integer"}}},
        tags=tuple(draw(st.lists(ids, max_size=3))),
        description=draw(st.one_of(st.none(), st.text(max_size=20))),
    )


@given(specs())
def test_every_field_survives_serialization(spec):
    again = DagSpec.from_json(spec.to_json())
    assert again == spec
    assert again.fingerprint() == spec.fingerprint()
    assert again.to_json() == spec.to_json()


def test_downstream_and_descendants_are_derived():
    spec = DagSpec("d", (TaskSpec("a"), TaskSpec("b", upstream=("a",)), TaskSpec("c", upstream=("b",))))
    assert spec.downstream("a") == ("b",)
    assert sorted(spec.descendants("a")) == ["b", "c"]
