"""Which DAG files a command reads: duplicates across files, commands about one DAG, and
`dags list -d` of one folder among several."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from millstream.store import Store
from millstream.store import dags as dags_q
from millstream.store import runs as runs_q
from tests.cli.conftest import make_cli


def dag_file(path: Path, *dags: tuple[str, str], before: str = "") -> Path:
    """A DAG file defining each (dag_id, task_id) as a one-task DAG."""
    body = "".join(f'with DAG("{d}"):\n    EmptyOperator(task_id="{t}")\n' for d, t in dags)
    path.write_text(textwrap.dedent(before) + "from millstream import DAG, EmptyOperator\n" + body)
    return path


def store_of(cli) -> Store:
    return Store(f"sqlite:///{cli.home / 'millstream.db'}")


def test_a_duplicate_dag_id_is_an_import_error_of_the_second_file_until_the_first_is_gone(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    cli = make_cli(tmp_path / "home", dags)
    a = dag_file(dags / "a.py", ("shared", "from_a"))
    b = dag_file(dags / "b.py", ("shared", "from_b"), ("only_b", "t"))

    listed = {d["dag_id"]: d["fileloc"] for d in json.loads(cli("dags", "list", "-o", "json").stdout)}
    assert listed == {"shared": str(a), "only_b": str(b)}
    p = cli("dags", "list-import-errors", ok=False)
    assert p.returncode == 1
    assert str(b) in p.stdout and str(a) in p.stdout and "'shared'" in p.stdout
    # The DAG keeps running from the first file: a run pins a.py's version.
    cli("dags", "trigger", "shared", "--run-id", "r1")
    store = store_of(cli)
    with store.read() as conn:
        run = runs_q.get_run(conn, "shared", "r1")
        pinned = dags_q.spec_for_version(conn, run["dag_version_id"])
    assert [t.task_id for t in pinned.tasks] == ["from_a"]

    a.unlink()
    listed = {d["dag_id"]: d["fileloc"] for d in json.loads(cli("dags", "list", "-o", "json").stdout)}
    assert listed == {"shared": str(b), "only_b": str(b)}
    assert "No import errors." in cli("dags", "list-import-errors").stdout
    store.dispose()


def test_trigger_and_pause_do_not_import_the_other_dag_files(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    cli = make_cli(tmp_path / "home", dags)
    marker = tmp_path / "slow-was-imported"
    fast = dag_file(dags / "fast.py", ("fast", "t"))
    # The slow file says when it is imported; it sleeps as a slow file would.
    dag_file(
        dags / "slow.py",
        ("slow", "t"),
        before=f"import pathlib, time\npathlib.Path({str(marker)!r}).write_text('x')\ntime.sleep(0.2)\n",
    )
    cli("dags", "list")
    assert marker.exists()
    marker.unlink()

    cli("dags", "trigger", "fast", "--run-id", "r1")
    cli("dags", "pause", "fast")
    assert not marker.exists(), "a command about DAG 'fast' imported slow.py"

    # An edited file is parsed again (only that file): the run pins the new version.
    dag_file(fast, ("fast", "t_new"))
    cli("dags", "trigger", "fast", "--run-id", "r2")
    assert not marker.exists()
    store = store_of(cli)
    with store.read() as conn:
        pinned = dags_q.spec_for_version(conn, runs_q.get_run(conn, "fast", "r2")["dag_version_id"])
    assert [t.task_id for t in pinned.tasks] == ["t_new"]
    store.dispose()

    # A DAG not yet in the store: the folder is parsed to find it.
    dag_file(dags / "new.py", ("brand_new", "t"))
    assert "Triggered brand_new" in cli("dags", "trigger", "brand_new").stdout


def test_dags_list_of_a_folder_shows_its_dags_and_not_those_of_another_folder(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    dag_file(one / "a.py", ("from_one", "t"))
    dag_file(two / "b.py", ("from_two", "t"))
    (two / "broken.py").write_text("x = (\n")
    cli = make_cli(tmp_path / "home", one)
    cli("dags", "list", "-d", str(two))

    assert [d["dag_id"] for d in json.loads(cli("dags", "list", "-d", str(one), "-o", "json").stdout)] == [
        "from_one"
    ]
    p = cli("dags", "list", "-d", str(one))
    assert "from_one" in p.stdout and "from_two" not in p.stdout
    assert "from_two" in p.stderr and "stale" in p.stderr  # said, apart from the list
    assert "failed to import" not in p.stderr  # two's broken file is not one's
