"""The authoring layer's only way to reach the engine: slots filled in at run time.

``dag.test()`` and ``load_dags()`` need the scheduler, but the authoring layer must not
import it, not even lazily: DAG files import the SDK, the engine imports the SDK, and an
SDK that imported the engine back would tie the two into one import cycle. So the SDK
declares here what it needs, and the ``millstream`` package registers the engine's
implementations when it is imported (each one importing the engine only when called,
so ``import millstream`` stays as light as the authoring API).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from millstream.errors import MillstreamError

if TYPE_CHECKING:
    from millstream.sdk.dag import DAG
    from millstream.sdk.import_errors import ImportErrorInfo
    from millstream.sdk.results import RunResult


class InlineRunner(Protocol):
    """Runs one DAG to the end in this process (``dag.test()``)."""

    def __call__(
        self,
        dag: DAG,
        *,
        conf: Mapping[str, Any] | None,
        logical_date: datetime | None,
        mark_success_pattern: str | re.Pattern[str] | None = None,
    ) -> RunResult: ...


class ParsedFile(Protocol):
    """One DAG file's parse outcome, as far as ``load_dags`` reads it."""

    @property
    def filename(self) -> str: ...

    @property
    def error(self) -> ImportErrorInfo | None: ...


class FileParser(Protocol):
    """Imports DAG files in child processes, each under a timeout, as the scheduler does."""

    def __call__(self, paths: list[str], timeout: float) -> Sequence[ParsedFile]: ...


_inline_runner: InlineRunner | None = None
_file_parser: FileParser | None = None


class EngineNotRegisteredError(MillstreamError):
    """The SDK was asked to run or parse DAGs before the engine registered itself."""


def _missing(what: str) -> EngineNotRegisteredError:
    return EngineNotRegisteredError(
        f"no engine registered for {what}: the `millstream` package registers it when imported; "
        "if you replaced it (register_inline_runner/register_file_parser), register one again"
    )


def register_inline_runner(runner: InlineRunner | None) -> InlineRunner | None:
    """Install what ``dag.test()`` calls; returns the previous one so a caller can put it back."""
    global _inline_runner
    previous, _inline_runner = _inline_runner, runner
    return previous


def register_file_parser(parser: FileParser | None) -> FileParser | None:
    """Install what ``load_dags()`` calls; returns the previous one so a caller can put it back."""
    global _file_parser
    previous, _file_parser = _file_parser, parser
    return previous


def inline_runner() -> InlineRunner:
    if _inline_runner is None:
        raise _missing("dag.test()")
    return _inline_runner


def file_parser() -> FileParser:
    if _file_parser is None:
        raise _missing("load_dags()")
    return _file_parser
