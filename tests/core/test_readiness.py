"""Trigger rules, checked cell by cell against Apache Airflow 3.3.2.

The expected states below were recorded by running each case in Airflow 3.3.2 with
``dag.test()`` (and one scheduler pass with a running upstream for the early decisions).
Where our design deliberately differs, the test says so.
"""

import pytest

from millstream.core.readiness import Outcome, UpstreamCounts, evaluate
from millstream.core.trigger_rules import TriggerRule

S, F, K, UF = "success", "failed", "skipped", "upstream_failed"
RUN, SKIP, UFAIL, WAIT = Outcome.RUN, Outcome.SKIP, Outcome.UPSTREAM_FAILED, Outcome.WAIT


def counts(*states: str, total: int | None = None) -> UpstreamCounts:
    return UpstreamCounts(
        total=total if total is not None else len(states),
        success=states.count(S),
        skipped=states.count(K),
        failed=states.count(F),
        upstream_failed=states.count(UF),
    )


COMBOS = [(S, S), (S, F), (F, F), (S, K), (K, K), (F, K), (S, UF), (K, UF)]
# Airflow 3.3.2, both upstreams finishing in the same scheduling pass. "success" means the
# task ran; we check the decision (RUN), since the task's own outcome is up to its code.
AIRFLOW = {
    "all_success": [RUN, UFAIL, UFAIL, SKIP, SKIP, UFAIL, UFAIL, UFAIL],
    "all_failed": [SKIP, SKIP, RUN, SKIP, SKIP, SKIP, SKIP, SKIP],
    "all_done": [RUN] * 8,
    "all_done_min_one_success": [RUN, RUN, UFAIL, SKIP, SKIP, SKIP, RUN, SKIP],
    "all_done_setup_success": [RUN] * 8,
    "all_skipped": [SKIP, SKIP, SKIP, SKIP, RUN, SKIP, SKIP, SKIP],
    "one_success": [RUN, RUN, UFAIL, RUN, SKIP, UFAIL, RUN, UFAIL],
    "one_failed": [SKIP, RUN, RUN, SKIP, SKIP, RUN, RUN, RUN],
    "one_done": [RUN, RUN, RUN, RUN, SKIP, RUN, RUN, SKIP],
    "none_failed": [RUN, UFAIL, UFAIL, RUN, RUN, UFAIL, UFAIL, UFAIL],
    "none_failed_min_one_success": [RUN, UFAIL, UFAIL, RUN, SKIP, UFAIL, UFAIL, UFAIL],
    "none_skipped": [RUN, RUN, RUN, SKIP, SKIP, SKIP, RUN, SKIP],
    "always": [RUN] * 8,
}

THREE = [(S, F, K), (S, K, UF), (F, UF), (UF, UF)]
AIRFLOW_THREE = {
    "all_success": [UFAIL, UFAIL, UFAIL, UFAIL],
    "all_failed": [SKIP, SKIP, RUN, RUN],
    "all_done": [RUN] * 4,
    "all_done_min_one_success": [SKIP, SKIP, UFAIL, UFAIL],
    "all_done_setup_success": [RUN] * 4,
    "all_skipped": [SKIP] * 4,
    "one_success": [RUN, RUN, UFAIL, UFAIL],
    "one_failed": [RUN] * 4,
    "one_done": [RUN, RUN, RUN, SKIP],
    "none_failed": [UFAIL] * 4,
    "none_failed_min_one_success": [UFAIL] * 4,
    "none_skipped": [SKIP, SKIP, RUN, RUN],
    "always": [RUN] * 4,
}

# Upstreams [fast, slow]: fast has ended in the column's state, slow still runs.
EARLY_COLUMNS = [S, F, K, UF]
AIRFLOW_EARLY = {
    "all_success": [WAIT, UFAIL, SKIP, UFAIL],
    "all_failed": [SKIP, WAIT, SKIP, WAIT],
    "all_done": [WAIT] * 4,
    "all_done_min_one_success": [WAIT, WAIT, SKIP, WAIT],
    "all_done_setup_success": [WAIT] * 4,
    "all_skipped": [SKIP, SKIP, WAIT, SKIP],
    "one_success": [RUN, WAIT, WAIT, WAIT],
    "one_failed": [WAIT, RUN, WAIT, RUN],
    "one_done": [RUN, RUN, WAIT, WAIT],
    "none_failed": [WAIT, UFAIL, WAIT, UFAIL],
    "none_failed_min_one_success": [WAIT, UFAIL, WAIT, UFAIL],
    "none_skipped": [WAIT, WAIT, SKIP, WAIT],
    "always": [RUN] * 4,
}


def test_every_rule_is_covered():
    assert set(AIRFLOW) == set(AIRFLOW_THREE) == set(AIRFLOW_EARLY) == {r.value for r in TriggerRule}


@pytest.mark.parametrize("rule", list(TriggerRule))
@pytest.mark.parametrize("i", range(len(COMBOS)))
def test_two_upstreams_match_airflow(rule, i):
    assert evaluate(rule, counts(*COMBOS[i])).outcome is AIRFLOW[rule.value][i]


@pytest.mark.parametrize("rule", list(TriggerRule))
@pytest.mark.parametrize("i", range(len(THREE)))
def test_more_combinations_match_airflow(rule, i):
    assert evaluate(rule, counts(*THREE[i])).outcome is AIRFLOW_THREE[rule.value][i]


@pytest.mark.parametrize("rule", list(TriggerRule))
@pytest.mark.parametrize("i", range(len(EARLY_COLUMNS)))
def test_early_decisions_match_airflow(rule, i):
    assert evaluate(rule, counts(EARLY_COLUMNS[i], total=2)).outcome is AIRFLOW_EARLY[rule.value][i]


def test_teardown_rule_with_setups_matches_airflow():
    rule = TriggerRule.ALL_DONE_SETUP_SUCCESS

    def with_setup(setup: str, other: str) -> Outcome:
        c = counts(setup, other)
        c = UpstreamCounts(
            **{
                **c.__dict__,
                "setup_total": 1,
                "setup_success": int(setup == S),
                "setup_skipped": int(setup == K),
            }
        )
        return evaluate(rule, c).outcome

    assert with_setup(S, S) is RUN
    assert with_setup(S, F) is RUN
    assert with_setup(F, S) is UFAIL
    assert with_setup(K, S) is SKIP
    assert with_setup(S, K) is RUN
    assert with_setup(UF, S) is UFAIL
    assert with_setup(F, F) is UFAIL


def test_waiting_reason_says_what_is_missing():
    v = evaluate(TriggerRule.ALL_SUCCESS, counts(S, total=3))
    assert v.outcome is WAIT and v.reason == (
        "waiting: 1/3 upstream done: 1 success, 0 failed, 0 upstream_failed, 0 skipped"
    )
