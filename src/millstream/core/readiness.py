"""Whether a waiting task instance may run, given how its upstream tasks ended.

Each trigger rule is a small pure function of :class:`UpstreamCounts`, returning a
:class:`Verdict` with the reason that ``tasks states`` and the UI show for a waiting
task. Counts are per task instance: a mapped upstream with 500 instances contributes
500, as in Airflow. The outcomes were checked against Airflow 3.3.2 (see
``tests/core/test_readiness.py``, which records them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from millstream.core.trigger_rules import TriggerRule


class Outcome(StrEnum):
    WAIT = "wait"  # not decided yet: some upstream is still unfinished
    RUN = "run"  # dependencies met: schedule it
    SKIP = "skip"  # will never run: mark skipped
    UPSTREAM_FAILED = "upstream_failed"  # will never run because of a failure upstream


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str


@dataclass(frozen=True)
class UpstreamCounts:
    """How the upstream task instances of one task stand right now."""

    total: int = 0
    success: int = 0
    skipped: int = 0
    failed: int = 0
    upstream_failed: int = 0
    removed: int = 0
    setup_total: int = 0  # upstream task instances that are setups
    setup_success: int = 0
    setup_skipped: int = 0

    @property
    def done(self) -> int:
        return self.success + self.skipped + self.failed + self.upstream_failed + self.removed

    @property
    def all_done(self) -> bool:
        return self.done >= self.total

    @property
    def failures(self) -> int:
        return self.failed + self.upstream_failed

    def describe(self) -> str:
        return (
            f"{self.done}/{self.total} upstream done: {self.success} success, "
            f"{self.failed} failed, {self.upstream_failed} upstream_failed, "
            f"{self.skipped} skipped"
        )


def _v(outcome: Outcome, reason: str) -> Verdict:
    return Verdict(outcome, reason)


def _wait(c: UpstreamCounts) -> Verdict:
    return _v(Outcome.WAIT, f"waiting: {c.describe()}")


def _all_success(c: UpstreamCounts) -> Verdict:
    if c.failures:
        return _v(Outcome.UPSTREAM_FAILED, f"all_success: {c.failures} upstream failed")
    if c.skipped:
        return _v(Outcome.SKIP, f"all_success: {c.skipped} upstream skipped")
    if c.all_done:
        return _v(Outcome.RUN, "all upstream succeeded")
    return _wait(c)


def _all_failed(c: UpstreamCounts) -> Verdict:
    if c.success or c.skipped:
        return _v(Outcome.SKIP, "all_failed: an upstream succeeded or was skipped")
    if c.all_done:
        return _v(Outcome.RUN, "all upstream failed")
    return _wait(c)


def _all_done(c: UpstreamCounts) -> Verdict:
    return _v(Outcome.RUN, "all upstream done") if c.all_done else _wait(c)


def _all_done_min_one_success(c: UpstreamCounts) -> Verdict:
    # As Airflow 3.3: a skipped upstream skips the task at once, even beside a success.
    if c.skipped:
        return _v(Outcome.SKIP, f"all_done_min_one_success: {c.skipped} upstream skipped")
    if not c.all_done:
        return _wait(c)
    if c.success:
        return _v(Outcome.RUN, "all upstream done, at least one succeeded")
    return _v(Outcome.UPSTREAM_FAILED, "all_done_min_one_success: no upstream succeeded")


def _all_done_setup_success(c: UpstreamCounts) -> Verdict:
    if not c.all_done:
        return _wait(c)
    if c.setup_total and not c.setup_success:
        if c.setup_skipped == c.setup_total:
            return _v(Outcome.SKIP, "all setups were skipped")
        return _v(Outcome.UPSTREAM_FAILED, "no setup succeeded")
    return _v(Outcome.RUN, "all upstream done and setups succeeded")


def _all_skipped(c: UpstreamCounts) -> Verdict:
    if c.success or c.failures:
        return _v(Outcome.SKIP, "all_skipped: an upstream did not skip")
    if c.all_done:
        return _v(Outcome.RUN, "all upstream skipped")
    return _wait(c)


def _one_success(c: UpstreamCounts) -> Verdict:
    if c.success:
        return _v(Outcome.RUN, "an upstream succeeded")
    if c.all_done:
        if c.skipped == c.total:
            return _v(Outcome.SKIP, "one_success: all upstream skipped")
        return _v(Outcome.UPSTREAM_FAILED, "one_success: no upstream succeeded")
    return _wait(c)


def _one_failed(c: UpstreamCounts) -> Verdict:
    if c.failures:
        return _v(Outcome.RUN, "an upstream failed")
    if c.all_done:
        return _v(Outcome.SKIP, "one_failed: no upstream failed")
    return _wait(c)


def _one_done(c: UpstreamCounts) -> Verdict:
    if c.success or c.failed:
        return _v(Outcome.RUN, "an upstream finished")
    if c.all_done:
        return _v(Outcome.SKIP, "one_done: no upstream succeeded or failed")
    return _wait(c)


def _none_failed(c: UpstreamCounts) -> Verdict:
    if c.failures:
        return _v(Outcome.UPSTREAM_FAILED, f"none_failed: {c.failures} upstream failed")
    return _v(Outcome.RUN, "no upstream failed") if c.all_done else _wait(c)


def _none_failed_min_one_success(c: UpstreamCounts) -> Verdict:
    if c.failures:
        return _v(Outcome.UPSTREAM_FAILED, f"none_failed_min_one_success: {c.failures} failed")
    if not c.all_done:
        return _wait(c)
    if c.total and c.skipped == c.total:
        return _v(Outcome.SKIP, "none_failed_min_one_success: all upstream skipped")
    return _v(Outcome.RUN, "no upstream failed, at least one succeeded")


def _none_skipped(c: UpstreamCounts) -> Verdict:
    if c.skipped:
        return _v(Outcome.SKIP, f"none_skipped: {c.skipped} upstream skipped")
    return _v(Outcome.RUN, "no upstream skipped") if c.all_done else _wait(c)


def _always(c: UpstreamCounts) -> Verdict:
    return _v(Outcome.RUN, "trigger rule always")


RULES: dict[TriggerRule, Callable[[UpstreamCounts], Verdict]] = {
    TriggerRule.ALL_SUCCESS: _all_success,
    TriggerRule.ALL_FAILED: _all_failed,
    TriggerRule.ALL_DONE: _all_done,
    TriggerRule.ALL_DONE_MIN_ONE_SUCCESS: _all_done_min_one_success,
    TriggerRule.ALL_DONE_SETUP_SUCCESS: _all_done_setup_success,
    TriggerRule.ALL_SKIPPED: _all_skipped,
    TriggerRule.ONE_SUCCESS: _one_success,
    TriggerRule.ONE_FAILED: _one_failed,
    TriggerRule.ONE_DONE: _one_done,
    TriggerRule.NONE_FAILED: _none_failed,
    TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS: _none_failed_min_one_success,
    TriggerRule.NONE_SKIPPED: _none_skipped,
    TriggerRule.ALWAYS: _always,
}


def evaluate(rule: TriggerRule, counts: UpstreamCounts) -> Verdict:
    """Decide a waiting task instance; a task with no upstream always runs."""
    if counts.total == 0:
        return _v(Outcome.RUN, "no upstream")
    return RULES[rule](counts)
