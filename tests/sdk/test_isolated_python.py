"""Python in another interpreter: cached virtual environments, arguments and results
across the boundary, tracebacks back, and bad requirements failing only their task."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from millstream import DAG, EmptyOperator, ExternalPythonOperator, PythonVirtualenvOperator, task
from millstream.core.states import TaskState as S
from millstream.sdk.standard import venvs

DAY = datetime(2024, 1, 2, tzinfo=UTC)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "venvs"
    monkeypatch.setenv("MILLSTREAM_VENV_CACHE", str(folder))
    return folder


def with_six(n, ds=None):
    import six

    return {"six": six.__version__, "n": n, "ds": ds}


def raises():
    def inner():
        raise ValueError("the data is wrong")

    inner()


def test_a_virtualenv_task_gets_its_requirements_and_returns_its_result(cache):
    with DAG("venv", schedule=None, start_date=DAY) as d:
        first = PythonVirtualenvOperator(
            task_id="first",
            python_callable=with_six,
            requirements=["six"],
            system_site_packages=False,
            op_args=[3],
        )

        @task.virtualenv(requirements=["six"], system_site_packages=False)
        def double(value):
            return value["n"] * 2

        @task
        def check(value):
            assert value == 6, value

        check(double(first.output))
    run = d.test(logical_date=DAY)
    assert run.states() == {"first": S.SUCCESS, "double": S.SUCCESS, "check": S.SUCCESS}
    assert "returned: {'six': '1." in run.ti("first").log and "'ds': '2024-01-02'" in run.ti("first").log
    # Both tasks asked for the same requirements: one environment, built once.
    assert [p.name for p in cache.iterdir() if p.is_dir()] == [venvs.env_hash(["six"], None, False, [], [])]
    assert run.ti("first").log.count("Creating the virtual environment") == 1
    assert "Creating the virtual environment" not in run.ti("double").log


def test_an_exception_comes_back_with_its_traceback(cache):
    with DAG("boom", schedule=None, start_date=DAY) as d:
        ExternalPythonOperator(task_id="boom", python=sys.executable, python_callable=raises)
        EmptyOperator(task_id="fine")
    run = d.test()
    assert run.ti("fine").state is S.SUCCESS
    reason = run.ti("boom").reason
    assert run.ti("boom").state is S.FAILED
    assert "Traceback (most recent call last)" in reason
    assert "in inner" in reason and "ValueError: the data is wrong" in reason


def test_requirements_that_cannot_be_installed_fail_only_their_task(cache):
    with DAG("badreq", schedule=None, start_date=DAY) as d:
        PythonVirtualenvOperator(
            task_id="bad", python_callable=with_six, op_args=[1],
            requirements=["millstream-no-such-package-xyz==9.9.9"], system_site_packages=False,
            pip_install_options=["--no-index"],
        )  # fmt: skip
        EmptyOperator(task_id="fine")
    run = d.test()
    assert run.ti("fine").state is S.SUCCESS
    assert run.ti("bad").state is S.FAILED
    assert "pip install failed" in run.ti("bad").reason
    assert "millstream-no-such-package-xyz" in run.ti("bad").reason
    assert not [p for p in cache.iterdir() if p.is_dir()]  # nothing half-built is kept as ready


def test_many_attempts_asking_at_once_build_the_environment_once(cache):
    code = (
        "import sys; from millstream.sdk.standard import venvs; "
        "print(venvs.environment(['six'], system_site_packages=False, venv_cache_path=sys.argv[1]))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(cache)], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(o.count("Creating the virtual environment") for o in outs) == 1
    assert len({o.strip().splitlines()[-1] for o in outs}) == 1


def test_the_serializer_is_installed_on_the_other_side(cache):
    op_kwargs = {"n": 2}
    with DAG("dill", schedule=None, start_date=DAY) as d:
        PythonVirtualenvOperator(
            task_id="t", python_callable=with_six, op_kwargs=op_kwargs, requirements=["six"],
            serializer="dill", system_site_packages=False,
        )  # fmt: skip
    run = d.test()
    assert run.ti("t").state is S.SUCCESS, run.ti("t").reason
    assert "'n': 2" in run.ti("t").log


def test_a_lambda_is_refused_when_the_dag_is_defined():
    from millstream.errors import DagDefinitionError

    with pytest.raises(DagDefinitionError, match="a lambda cannot run in another interpreter"):
        with DAG("lam", schedule=None, start_date=DAY):
            PythonVirtualenvOperator(task_id="t", python_callable=lambda: 1)


def test_with_uv_on_the_path_the_environment_is_built_with_uv(cache, monkeypatch, capsys):
    import os
    import shutil
    from pathlib import Path

    bin_dir = Path(sys.executable).parent  # the dev extras install uv beside the interpreter
    if not (bin_dir / "uv").exists():
        pytest.fail("uv is a dev dependency: `make test` installs it into the virtualenv")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert shutil.which("uv") == str(bin_dir / "uv")
    folder = venvs.environment(["six"], system_site_packages=False)
    assert "with uv" in capsys.readouterr().out
    done = subprocess.run([str(folder / "bin" / "python"), "-c", "import six"], check=False)
    assert done.returncode == 0
