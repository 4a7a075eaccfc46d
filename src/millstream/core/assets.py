"""Asset conditions, and how a consumer's queued asset events become runs.

A condition is plain JSON so that it can live in a DagSpec: ``{"asset": name}``,
``{"alias": name}``, ``{"all": [...]}`` or ``{"any": [...]}``. The store keeps, per
consuming DAG, the events not yet consumed ("queued"), each under the condition leaf it
satisfies (its *key*: ``asset:NAME`` or ``alias:NAME``). :func:`plan_consumption` decides,
from nothing but those rows, which runs to create and which rows they use up, so that the
scheduler can do it in one transaction and a restart can neither lose nor repeat an event.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: How queued events fold into runs (see :func:`plan_consumption`).
POLICIES = ("batch", "each_event", "latest_only")


class AssetConditionError(ValueError):
    """A serialized asset condition that cannot be evaluated."""


def asset_key(name: str) -> str:
    return f"asset:{name}"


def alias_key(name: str) -> str:
    return f"alias:{name}"


def split_key(key: str) -> tuple[str, str]:
    """``asset:x`` -> (``asset``, ``x``)."""
    kind, _, name = key.partition(":")
    return kind, name


def validate_condition(cond: Any, where: str = "schedule") -> None:
    if not isinstance(cond, Mapping) or len(cond) != 1:
        raise AssetConditionError(
            f"{where}: an asset condition is one of asset, alias, all, any; got {cond!r}"
        )
    ((op, arg),) = cond.items()
    if op in ("asset", "alias"):
        if not isinstance(arg, str) or not arg:
            raise AssetConditionError(f"{where}: {op} name must be a non-empty string, got {arg!r}")
    elif op in ("all", "any"):
        if not isinstance(arg, list | tuple) or not arg:
            raise AssetConditionError(f"{where}: {op!r} needs at least one asset")
        for i, sub in enumerate(arg):
            validate_condition(sub, f"{where}.{op}[{i}]")
    else:
        raise AssetConditionError(f"{where}: unknown asset condition {op!r}")


def condition_keys(cond: Mapping[str, Any]) -> list[str]:
    """Every leaf of the condition, in order of first appearance."""
    out: dict[str, None] = {}
    stack = [cond]
    while stack:
        c = stack.pop(0)
        ((op, arg),) = c.items()
        if op == "asset":
            out[asset_key(arg)] = None
        elif op == "alias":
            out[alias_key(arg)] = None
        else:
            stack[0:0] = list(arg)
    return list(out)


def evaluate(cond: Mapping[str, Any], present: Collection[str]) -> bool:
    """Is the condition met when the keys in ``present`` have a new event?"""
    ((op, arg),) = cond.items()
    if op == "asset":
        return asset_key(arg) in present
    if op == "alias":
        return alias_key(arg) in present
    if op == "all":
        return all(evaluate(c, present) for c in arg)
    return any(evaluate(c, present) for c in arg)


def describe(cond: Mapping[str, Any]) -> str:
    """``a & (b | c)``: the condition as a user would write it."""
    ((op, arg),) = cond.items()
    if op == "asset":
        return str(arg)
    if op == "alias":
        return f"alias {arg}"
    parts = [describe(c) for c in arg]
    if len(parts) == 1:
        return parts[0]
    joined = (" & " if op == "all" else " | ").join(
        f"({p})" if (" & " in p or " | " in p) else p for p in parts
    )
    return joined


@dataclass(frozen=True, order=True)
class QueuedEvent:
    """One queued row: event ``event_id`` counts for the condition leaf ``key``."""

    event_id: int
    key: str


@dataclass
class Consumption:
    """Runs to create (each a sorted tuple of event ids) and queue rows used up."""

    runs: list[tuple[int, ...]] = field(default_factory=list)
    consumed: set[QueuedEvent] = field(default_factory=set)


def plan_consumption(
    cond: Mapping[str, Any], queued: Sequence[QueuedEvent], policy: str = "batch"
) -> Consumption:
    """Which runs the queued events give under ``policy``.

    - ``batch`` (Airflow's behaviour): once the condition is met, every queued event folds
      into one run: two ``a`` events before ``b`` arrives give one run carrying both.
    - ``each_event``: one run per event, in arrival order. Under ``&`` events are paired
      in order (the first ``a`` with the first ``b``); an event left over waits for the
      next partner. Only events on the branch that met the condition are used: under
      ``(a & b) | c``, a ``c`` run leaves a waiting ``a`` for its ``b``.
    - ``latest_only``: once met, one run carrying only the newest event of each leaf; the
      older ones are consumed without a run.

    Rows whose key the condition no longer mentions (the schedule changed) are dropped.
    """
    if policy not in POLICIES:
        raise AssetConditionError(f"unknown asset event policy {policy!r}; use one of {', '.join(POLICIES)}")
    keys = set(condition_keys(cond))
    out = Consumption()
    rows = sorted(queued)
    out.consumed.update(r for r in rows if r.key not in keys)
    rows = [r for r in rows if r.key in keys]
    if not rows or not evaluate(cond, {r.key for r in rows}):
        return out
    if policy == "batch":
        out.runs.append(tuple(sorted({r.event_id for r in rows})))
        out.consumed.update(rows)
    elif policy == "latest_only":
        newest = {r.key: r.event_id for r in rows}  # rows are in event order
        out.runs.append(tuple(sorted(set(newest.values()))))
        out.consumed.update(rows)
    else:
        out.runs, used = _each_event(cond, rows)
        out.consumed.update(used)
    return out


def _needed(cond: Mapping[str, Any], heads: Mapping[str, int]) -> set[str] | None:
    """The leaves whose oldest queued event a run needs to meet ``cond`` (None: not met).
    Under ``any``, the branch that could have fired first (smallest newest event) wins."""
    ((op, arg),) = cond.items()
    if op in ("asset", "alias"):
        key = asset_key(arg) if op == "asset" else alias_key(arg)
        return {key} if key in heads else None
    parts = [_needed(c, heads) for c in arg]
    if op == "all":
        if any(p is None for p in parts):
            return None
        return set().union(*parts)  # type: ignore[arg-type]
    met = [p for p in parts if p is not None]
    if not met:
        return None
    return min(met, key=lambda keys: (max(heads[k] for k in keys), sorted(keys)))


def _each_event(
    cond: Mapping[str, Any], rows: list[QueuedEvent]
) -> tuple[list[tuple[int, ...]], list[QueuedEvent]]:
    """One run per satisfying set of oldest events, in arrival order. Per leaf a FIFO of
    its events; each run costs a walk of the condition, not of the queue."""
    queues: dict[str, deque[QueuedEvent]] = {}
    for r in rows:
        queues.setdefault(r.key, deque()).append(r)
    by_event: dict[int, list[QueuedEvent]] = {}
    for r in rows:
        by_event.setdefault(r.event_id, []).append(r)
    gone: set[QueuedEvent] = set()
    runs: list[tuple[int, ...]] = []
    used: list[QueuedEvent] = []
    while True:
        heads: dict[str, int] = {}
        for key, q in queues.items():
            while q and q[0] in gone:
                q.popleft()
            if q:
                heads[key] = q[0].event_id
        needed = _needed(cond, heads)
        if needed is None:
            return runs, used
        fired = {heads[k] for k in needed}
        runs.append(tuple(sorted(fired)))
        # An event queued under two leaves (an asset and an alias resolving to it) is
        # used up under both: it must not trigger a second run.
        for e in fired:
            for r in by_event[e]:
                if r not in gone:
                    gone.add(r)
                    used.append(r)
