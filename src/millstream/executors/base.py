"""The executor interface the scheduler talks to."""

from __future__ import annotations

from typing import Protocol

from millstream.worker.item import Event, WorkItem


class ExecutorBrokenError(RuntimeError):
    """The executor cannot run anything (its workers keep dying): the scheduler stops."""


class Executor(Protocol):
    """Accepts work items and reports Started / Finished events.

    ``events`` blocks until at least one event is available or ``timeout`` passes: the
    scheduler sleeps in it, which is what makes the loop event-driven (a finished task
    wakes it at once) and idle-cheap (no polling while nothing happens).
    """

    #: How many attempts may be in flight at once.
    slots: int

    def start(self) -> None: ...

    def submit(self, item: WorkItem) -> None: ...

    def events(self, timeout: float) -> list[Event]: ...

    def in_flight(self) -> int: ...

    def cancel(self, key: tuple[int, str, int], reason: str = "its run was stopped") -> None:
        """Stop an attempt (its run timed out, a user marked it); whatever it reports later
        is ignored."""

    def wake(self) -> None:
        """Make a pending or the next ``events`` call return at once (thread-safe)."""

    def shutdown(self) -> None: ...
