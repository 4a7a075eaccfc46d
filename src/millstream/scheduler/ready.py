"""The ready queue: instances the planner made ``scheduled``, waiting for room to run.

Kept per (run, task) in the order they became ready, so dispatch walks the few (run, task)
pairs and not the instances: a task held back by a limit costs nothing however many of
its instances wait. Instances decided inside a transaction are staged and only become
ready once that transaction has committed (a rolled-back turn must not dispatch them).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable

ReadyKey = tuple[int, str]  # (run pk, task id)


class ReadyQueue:
    def __init__(self) -> None:
        self._queues: dict[ReadyKey, deque[int]] = {}
        # (-priority, first seen): higher priority first, then first come first served.
        self._rank: dict[ReadyKey, tuple[int, int]] = {}
        self._staged: list[tuple[int, str, int]] = []
        self._seq = itertools.count()

    def stage(self, run_pk: int, task_id: str, map_index: int) -> None:
        """Ready once the current transaction commits (see :meth:`publish`)."""
        self._staged.append((run_pk, task_id, map_index))

    def publish(self, priority: Callable[[int, str], int]) -> None:
        """After a commit: what was staged becomes ready, ranked by ``priority(run_pk, task_id)``."""
        for run_pk, task_id, idx in self._staged:
            key = (run_pk, task_id)
            if key not in self._queues:
                self._queues[key] = deque()
                self._rank.setdefault(key, (-priority(run_pk, task_id), next(self._seq)))
            self._queues[key].append(idx)
        self._staged = []

    def clear(self) -> None:
        self._queues.clear()
        self._rank.clear()
        self._staged.clear()

    def keys_in_order(self) -> list[ReadyKey]:
        return sorted(self._queues, key=self._rank.__getitem__)

    def queue(self, key: ReadyKey) -> deque[int]:
        return self._queues[key]

    def discard(self, key: ReadyKey) -> None:
        """Forget a (run, task) whose run is gone; its rank is kept for its first-seen order."""
        del self._queues[key]

    def done(self, key: ReadyKey) -> None:
        """A (run, task) whose queue is empty."""
        del self._queues[key]
        self._rank.pop(key, None)

    def __bool__(self) -> bool:
        return bool(self._queues)
