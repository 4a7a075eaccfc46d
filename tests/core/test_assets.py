"""Asset conditions and how queued events become runs (pure core)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from millstream.core.assets import (
    AssetConditionError,
    QueuedEvent,
    condition_keys,
    describe,
    evaluate,
    plan_consumption,
    validate_condition,
)

A, B, C = {"asset": "a"}, {"asset": "b"}, {"asset": "c"}
AND = {"all": [A, B]}
OR = {"any": [A, B]}
NESTED = {"all": [{"any": [A, B]}, C]}  # (a | b) & c


def q(*pairs):
    return [QueuedEvent(i, f"asset:{name}") for i, name in pairs]


@pytest.mark.parametrize(
    ("cond", "present", "met"),
    [
        (A, set(), False),
        (A, {"asset:a"}, True),
        (AND, {"asset:a"}, False),
        (AND, {"asset:a", "asset:b"}, True),
        (OR, {"asset:b"}, True),
        (OR, set(), False),
        (NESTED, {"asset:a"}, False),
        (NESTED, {"asset:b", "asset:c"}, True),
        (NESTED, {"asset:c"}, False),
        ({"alias": "x"}, {"alias:x"}, True),
        ({"alias": "x"}, {"asset:x"}, False),
    ],
)
def test_evaluate(cond, present, met):
    assert evaluate(cond, present) is met


def test_keys_and_description():
    assert condition_keys(NESTED) == ["asset:a", "asset:b", "asset:c"]
    assert describe(NESTED) == "(a | b) & c"
    assert describe({"any": [A, {"alias": "late"}]}) == "a | alias late"


@pytest.mark.parametrize(
    "bad",
    [{}, {"asset": ""}, {"all": []}, {"xor": [A]}, {"asset": "a", "alias": "b"}, {"any": [{"asset": 1}]}],
)
def test_invalid_conditions_are_rejected(bad):
    with pytest.raises(AssetConditionError):
        validate_condition(bad)


def test_batch_folds_every_queued_event_into_one_run():
    plan = plan_consumption(AND, q((1, "a"), (2, "a")), "batch")
    assert plan.runs == [] and plan.consumed == set()  # waiting for b
    plan = plan_consumption(AND, q((1, "a"), (2, "a"), (3, "b")), "batch")
    assert plan.runs == [(1, 2, 3)]
    assert plan.consumed == set(q((1, "a"), (2, "a"), (3, "b")))


def test_each_event_gives_one_run_per_event_in_order_and_pairs_under_and():
    assert plan_consumption(OR, q((1, "a"), (2, "b"), (3, "a")), "each_event").runs == [(1,), (2,), (3,)]
    plan = plan_consumption(AND, q((1, "a"), (2, "a"), (3, "b")), "each_event")
    assert plan.runs == [(1, 3)]
    assert plan.consumed == set(q((1, "a"), (3, "b")))  # a=2 waits for the next b


def test_latest_only_carries_the_newest_event_of_each_asset():
    plan = plan_consumption(AND, q((1, "a"), (2, "a"), (3, "b"), (4, "b")), "latest_only")
    assert plan.runs == [(2, 4)]
    assert len(plan.consumed) == 4  # the older ones are used up without a run


def test_rows_for_assets_the_schedule_no_longer_names_are_dropped():
    plan = plan_consumption(A, q((1, "z"), (2, "a")), "batch")
    assert plan.runs == [(2,)]
    assert plan.consumed == set(q((1, "z"), (2, "a")))
    plan = plan_consumption(AND, q((1, "z")), "batch")
    assert plan.runs == [] and plan.consumed == set(q((1, "z")))


def test_an_event_queued_under_an_asset_and_an_alias_counts_once():
    cond = {"any": [A, {"alias": "x"}]}
    rows = [QueuedEvent(1, "asset:a"), QueuedEvent(1, "alias:x")]
    for policy in ("batch", "each_event", "latest_only"):
        plan = plan_consumption(cond, rows, policy)
        assert plan.runs == [(1,)], policy
        assert plan.consumed == set(rows), policy


def test_unknown_policy_is_an_error():
    with pytest.raises(AssetConditionError, match="each_event"):
        plan_consumption(A, [], "sometimes")


events = st.lists(st.sampled_from(["a", "b", "c"]), max_size=30)


@settings(max_examples=200, deadline=None)
@given(
    names=events,
    policy=st.sampled_from(["batch", "each_event", "latest_only"]),
    cond=st.sampled_from([A, AND, OR, NESTED]),
)
def test_events_arriving_one_by_one_are_never_lost_or_used_twice(names, policy, cond):
    """Feed events one at a time, planning after each (as the scheduler does): no event
    is in two runs, every event is either in a run, dropped by latest_only, or still
    queued, and what stays queued never meets the condition."""
    queue: list[QueuedEvent] = []
    in_runs: list[int] = []
    dropped: set[int] = set()
    for i, name in enumerate(names, start=1):
        queue.append(QueuedEvent(i, f"asset:{name}"))
        plan = plan_consumption(cond, queue, policy)
        used = {e for run in plan.runs for e in run}
        in_runs.extend(used)
        dropped |= {r.event_id for r in plan.consumed} - used
        queue = [r for r in queue if r not in plan.consumed]
        assert not evaluate(cond, {r.key for r in queue})
    assert len(in_runs) == len(set(in_runs))
    remaining = {r.event_id for r in queue}
    assert set(in_runs) | dropped | remaining == set(range(1, len(names) + 1))
    assert not (set(in_runs) & remaining)
    if policy != "latest_only":
        keys = set(condition_keys(cond))
        assert all(f"asset:{names[e - 1]}" not in keys for e in dropped)


def test_each_event_uses_only_the_branch_that_fired():
    cond = {"any": [{"all": [A, B]}, C]}  # (a & b) | c
    plan = plan_consumption(cond, q((1, "a"), (2, "c")), "each_event")
    assert plan.runs == [(2,)]
    assert plan.consumed == set(q((2, "c")))  # a=1 still waits for its b
    plan = plan_consumption(cond, q((1, "a"), (2, "c"), (3, "b")), "each_event")
    assert plan.runs == [(2,), (1, 3)]


def test_each_event_pairs_a_long_queue_in_order():
    """10 000 waiting pairs (the planner walks the condition per run, not the queue)."""
    rows = q(*[(i, "a") for i in range(1, 10_001)], *[(i, "b") for i in range(10_001, 20_001)])
    plan = plan_consumption(AND, rows, "each_event")
    assert plan.runs == [(i, 10_000 + i) for i in range(1, 10_001)]
