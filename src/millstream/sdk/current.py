"""The DAG being defined: a stack, so that ``with DAG(...)`` blocks may nest.

Its own module so that tasks and task groups can find their DAG without importing
``dag.py``, which imports them.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from millstream.sdk.dag import DAG

_dag_stack: ContextVar[tuple[DAG, ...]] = ContextVar("millstream_dags", default=())


def current_dag() -> DAG | None:
    stack = _dag_stack.get()
    return stack[-1] if stack else None


def enter_dag(dag: DAG) -> Token[tuple[DAG, ...]]:
    return _dag_stack.set((*_dag_stack.get(), dag))


def exit_dag(token: Token[tuple[DAG, ...]]) -> None:
    _dag_stack.reset(token)
