"""Edge labels and the wiring helpers Airflow has beside ``chain``.

``a >> Label("no errors") >> b`` wires ``a >> b`` and names that edge; the graph shows
the name on the arrow. ``cross_downstream`` and ``chain_linear`` connect every task of
one group to every task of the next.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from millstream.errors import DagDefinitionError


def _flat(value: Any) -> list[Any]:
    """The tasks, outputs and groups in ``value`` (a task output is one item, not a list)."""
    if hasattr(value, "operator") or hasattr(value, "roots"):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        return [v for item in value for v in _flat(item)]
    return [value]


class EdgeModifier:
    """Sits between two sides of ``>>`` and labels the edges it creates (Airflow's
    ``EdgeModifier``; :class:`Label` is the one kind there is)."""

    def __init__(self, label: str | None = None) -> None:
        self.label = label
        self._upstream: list[Any] = []
        self._downstream: list[Any] = []

    def _connect(self, upstream: list[Any], downstream: list[Any]) -> None:
        for up in upstream:
            for down in downstream:
                up >> down
                if self.label is not None:
                    _label_edge(up, down, self.label)

    def __rrshift__(self, other: Any) -> EdgeModifier:  # other >> label
        self._upstream.extend(_flat(other))
        self._connect(_flat(other), self._downstream)
        return self

    def __rshift__(self, other: Any) -> Any:  # label >> other
        self._downstream.extend(_flat(other))
        self._connect(self._upstream, _flat(other))
        return other

    def __rlshift__(self, other: Any) -> EdgeModifier:  # other << label
        self._downstream.extend(_flat(other))
        self._connect(self._upstream, _flat(other))
        return self

    def __lshift__(self, other: Any) -> Any:  # label << other
        self._upstream.extend(_flat(other))
        self._connect(_flat(other), self._downstream)
        return other

    def __repr__(self) -> str:
        return f"<Label {self.label!r}>"


class Label(EdgeModifier):
    """``a >> Label("Errors found") >> b``: the edge a → b carries that text."""

    def __init__(self, label: str) -> None:
        super().__init__(label)


def _tasks(value: Any) -> list[Any]:
    """The tasks at one end of an edge: a task, an output (its task) or a group's ends."""
    operator = getattr(value, "operator", None)
    return [operator] if operator is not None else [value]


def _label_edge(up: Any, down: Any, label: str) -> None:
    ups = up.leaves() if hasattr(up, "leaves") else _tasks(up)
    downs = down.roots() if hasattr(down, "roots") else _tasks(down)
    for d in downs:
        for u in ups:
            d.edge_labels[u.task_id] = label


def chain(*elements: Any) -> None:
    """``chain(a, b, [c, d], e)``: a >> b >> [c, d] >> e; two lists in a row pair up."""
    for left, right in itertools.pairwise(elements):
        if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            if len(left) != len(right):
                raise DagDefinitionError(
                    f"chain(): adjacent lists must have the same length, got {len(left)} and {len(right)}"
                )
            for a, b in zip(left, right, strict=True):
                a >> b
        elif isinstance(left, (list, tuple)):
            for a in left:
                a >> right
        else:
            left >> right


def cross_downstream(from_tasks: Iterable[Any], to_tasks: Any) -> None:
    """Every task of ``from_tasks`` upstream of every task of ``to_tasks``."""
    for task in from_tasks:
        task >> to_tasks


def chain_linear(*elements: Any) -> None:
    """``chain_linear(a, [b, c], [d, e], f)``: each element is wired to every task of the
    next (a >> b, a >> c, b >> d, b >> e, c >> d, c >> e, d >> f, e >> f)."""
    if len(elements) < 2:
        raise ValueError("chain_linear() needs at least two elements")
    for left, right in itertools.pairwise(elements):
        for task in _flat(left):
            task >> right
