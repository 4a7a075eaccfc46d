"""Effective priority weights, as Airflow's ``weight_rule`` sums them.

``downstream`` (Airflow's default) gives a task its own weight plus that of every task
after it, so that long chains start first; ``upstream`` adds the tasks before it;
``absolute`` is the task's own weight. Each other task counts once, however many paths
lead to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Set


def _reach(start: str, edges: Mapping[str, Set[str]], memo: dict[str, frozenset[str]]) -> frozenset[str]:
    """Every task reachable from ``start`` along ``edges`` (not ``start`` itself)."""
    if start in memo:
        return memo[start]
    stack, seen = list(edges.get(start, ())), set()
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        if t in memo:
            seen.add(t)
            seen.update(memo[t])
            continue
        seen.add(t)
        stack.extend(edges.get(t, ()))
    memo[start] = frozenset(seen)
    return memo[start]


def effective_weights(
    weights: Mapping[str, int],
    rules: Mapping[str, str],
    downstream: Mapping[str, Set[str]],
    upstream: Mapping[str, Set[str]],
) -> dict[str, int]:
    """task_id -> the weight the dispatcher orders by."""
    down: dict[str, frozenset[str]] = {}
    up: dict[str, frozenset[str]] = {}
    out: dict[str, int] = {}
    for task_id, own in weights.items():
        rule = rules.get(task_id, "downstream")
        if rule == "absolute":
            out[task_id] = own
            continue
        others = _reach(task_id, downstream, down) if rule == "downstream" else _reach(task_id, upstream, up)
        out[task_id] = own + sum(weights[t] for t in others)
    return out
