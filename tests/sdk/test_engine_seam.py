"""The seam between the authoring layer and the engine (millstream.sdk.engine).

dag.test() and load_dags() reach the engine only through what ``import millstream``
registered; these tests swap in fakes to show the SDK calls the seam and nothing else.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest

from millstream import DAG, EmptyOperator, load_dags
from millstream.core.states import RunState
from millstream.errors import MillstreamError
from millstream.sdk import engine, import_errors, loader, results
from millstream.sdk.import_errors import ImportErrorInfo
from millstream.sdk.results import RunResult


@pytest.fixture
def restore_engine() -> Iterator[None]:
    runner = engine.register_inline_runner(None)
    parser = engine.register_file_parser(None)
    engine.register_inline_runner(runner)
    engine.register_file_parser(parser)
    yield
    engine.register_inline_runner(runner)
    engine.register_file_parser(parser)


def _dag() -> DAG:
    with DAG("seam", start_date=datetime(2025, 1, 1)) as d:
        EmptyOperator(task_id="t")
    return d


def test_importing_millstream_registers_the_engine() -> None:
    assert engine.inline_runner() is not None
    assert engine.file_parser() is not None


def test_without_an_engine_the_sdk_says_what_is_missing(restore_engine: None, tmp_path) -> None:
    engine.register_inline_runner(None)
    engine.register_file_parser(None)
    with pytest.raises(MillstreamError, match=r"no engine registered for dag\.test\(\)"):
        _dag().test()
    (tmp_path / "x.py").write_text("")
    with pytest.raises(MillstreamError, match=r"no engine registered for load_dags\(\)"):
        load_dags(tmp_path)


def test_dag_test_hands_the_dag_and_its_arguments_to_the_registered_runner(restore_engine: None) -> None:
    calls = []

    def fake(dag, *, conf, logical_date, mark_success_pattern=None):
        calls.append((dag.dag_id, conf, logical_date, mark_success_pattern))
        return RunResult(dag.dag_id, "r", RunState.SUCCESS)

    engine.register_inline_runner(fake)
    d = _dag()
    when = datetime(2025, 2, 1)
    assert d.test({"a": 1}, conf={"ignored": True}, logical_date=when).run_id == "r"
    d.test(conf={"b": 2}, mark_success_pattern="x.*")
    assert calls == [("seam", {"a": 1}, when, None), ("seam", {"b": 2}, None, "x.*")]


def test_load_dags_parses_through_the_registered_parser(restore_engine: None, tmp_path) -> None:
    @dataclass
    class Parsed:
        filename: str
        error: ImportErrorInfo | None

    (tmp_path / "a.py").write_text("")
    seen = []

    def fake(paths, timeout):
        seen.append((paths, timeout))
        return [Parsed(p, ImportErrorInfo(p, 1, "nope")) for p in paths]

    engine.register_file_parser(fake)
    out = load_dags(tmp_path, timeout=7)
    assert seen == [([str(tmp_path / "a.py")], 7)]
    assert [e.message for e in out.errors] == ["nope"]


def test_result_types_keep_their_old_import_paths() -> None:
    from millstream import testing

    assert testing.RunResult is results.RunResult
    assert testing.TaskInstanceResult is results.TaskInstanceResult
    assert loader.ImportErrorInfo is import_errors.ImportErrorInfo
