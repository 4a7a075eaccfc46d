"""millstream.load_dags: what users call in their own tests to check every DAG imports."""

import textwrap

from millstream import load_dags
from millstream.core.states import RunState


def test_finds_unassigned_decorated_dags_and_reports_errors_with_lines(tmp_path):
    (tmp_path / "good.py").write_text(
        textwrap.dedent(
            """
            from millstream import dag, task

            @dag
            def never_assigned():
                @task
                def t():
                    return 1
                t()

            never_assigned()
            """
        )
    )
    (tmp_path / "bad.py").write_text("import os\n\nraise RuntimeError('config missing')\n")
    (tmp_path / "_helpers.py").write_text("raise SystemExit('never imported: private module')\n")
    dags, errors = load_dags(tmp_path)
    assert list(dags) == ["never_assigned"]
    assert [(e.filename.endswith("bad.py"), e.lineno, e.message) for e in errors] == [
        (True, 3, "RuntimeError: config missing")
    ]
    assert dags["never_assigned"].test().state is RunState.SUCCESS


def test_a_file_that_never_finishes_importing_is_reported(tmp_path):
    (tmp_path / "slow.py").write_text("import time\ntime.sleep(60)\n")
    result = load_dags(tmp_path, timeout=1)
    assert result.dags == {}
    assert "took longer than 1s" in result.errors[0].message
