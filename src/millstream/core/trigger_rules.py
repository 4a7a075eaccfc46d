"""The trigger rules a task may declare (names and meanings as in Airflow 3)."""

from __future__ import annotations

from enum import StrEnum


class TriggerRule(StrEnum):
    ALL_SUCCESS = "all_success"  # every upstream succeeded (the default)
    ALL_FAILED = "all_failed"  # every upstream failed or is upstream_failed
    ALL_DONE = "all_done"  # every upstream finished, whatever its state
    ALL_DONE_MIN_ONE_SUCCESS = "all_done_min_one_success"  # all finished, at least one success
    ALL_DONE_SETUP_SUCCESS = "all_done_setup_success"  # all finished, a setup upstream succeeded
    ALL_SKIPPED = "all_skipped"  # every upstream was skipped
    ONE_SUCCESS = "one_success"  # as soon as one upstream succeeded
    ONE_FAILED = "one_failed"  # as soon as one upstream failed
    ONE_DONE = "one_done"  # as soon as one upstream succeeded or failed
    NONE_FAILED = "none_failed"  # all finished and none failed (skips are fine)
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"  # as above, plus one success
    NONE_SKIPPED = "none_skipped"  # all finished and none skipped
    ALWAYS = "always"  # no dependency at all
