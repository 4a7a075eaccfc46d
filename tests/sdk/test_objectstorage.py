"""ObjectStoragePath: Airflow 3's path on any fsspec filesystem, and a connection it
names resolved to its credentials on first use, and a path as a task result."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from millstream import DAG, Connection, ObjectStoragePath, task
from millstream.sdk import secrets
from millstream.sdk.connection import ConnectionNotFoundError
from millstream.sdk.objectstorage import storage_options_for


def test_a_path_on_a_filesystem_reads_writes_and_lists(tmp_path):
    base = ObjectStoragePath(f"file://{tmp_path}")
    (base / "out").mkdir(exist_ok=True)
    target = base / "out" / "data.txt"
    with target.open("w") as f:
        f.write("hello")
    assert target.read_text() == "hello"
    assert [p.name for p in (base / "out").iterdir()] == ["data.txt"]
    assert isinstance(target, ObjectStoragePath) and target.conn_id is None


def test_memory_paths_have_buckets_and_keys():
    p = ObjectStoragePath("memory://bucket/a/b.csv")
    p.write_text("x")
    assert (p.protocol, p.bucket, p.key, p.namespace) == ("memory", "bucket", "a/b.csv", "memory://bucket")
    assert p.exists() and p == ObjectStoragePath("memory://bucket/a/b.csv")


def test_a_connection_in_the_path_is_kept_and_used_at_first_use(monkeypatch, tmp_path):
    base = ObjectStoragePath("s3://aws_default@airflow-tutorial-data/")
    child = base / "air_quality.parquet"
    assert (base.conn_id, child.conn_id) == ("aws_default", "aws_default")
    assert str(child) == "s3://airflow-tutorial-data/air_quality.parquet"
    with pytest.raises(ConnectionNotFoundError, match="The conn_id `aws_default` isn't defined"):
        child.exists()
    assert ObjectStoragePath("memory://b/x", conn_id="other").conn_id == "other"


def test_the_connection_gives_the_filesystem_its_options(monkeypatch, tmp_path):
    """A local filesystem with auto_mkdir from the connection's extra writes into a folder
    that does not exist yet; without the connection the same write fails."""
    monkeypatch.setenv("MILLSTREAM_CONN_LAKE", json.dumps({"conn_type": "fs", "extra": {"auto_mkdir": True}}))
    secrets.reset()
    target = ObjectStoragePath(f"file://{tmp_path}/new/deeper/x.txt", conn_id="lake")
    with target.open("w") as f:
        f.write("via the connection")
    assert (tmp_path / "new" / "deeper" / "x.txt").read_text() == "via the connection"
    with pytest.raises(FileNotFoundError):
        with ObjectStoragePath(f"file://{tmp_path}/other/x.txt").open("w") as f:
            f.write("no")


def test_s3_connection_fields_become_storage_options():
    conn = Connection(
        conn_id="aws",
        conn_type="aws",
        login="AKIA1",
        password="s3cret",
        extra={"region_name": "eu-west-1", "endpoint_url": "http://127.0.0.1:9000", "anon": False},
    )
    assert storage_options_for("s3", conn) == {
        "key": "AKIA1",
        "secret": "s3cret",
        "endpoint_url": "http://127.0.0.1:9000",
        "client_kwargs": {"region_name": "eu-west-1"},
        "anon": False,
    }


def test_a_path_travels_between_tasks_with_its_connection(tmp_path, monkeypatch):
    monkeypatch.setenv("MILLSTREAM_CONN_LAKE", json.dumps({"conn_type": "fs", "extra": {"auto_mkdir": True}}))
    secrets.reset()
    with DAG("paths", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=UTC)) as dag:

        @task
        def write() -> ObjectStoragePath:
            p = ObjectStoragePath(f"file://{tmp_path}/out/part.txt", conn_id="lake")
            with p.open("w") as f:  # the connection's auto_mkdir makes out/
                f.write("42")
            return p

        @task
        def read(p) -> str:
            assert isinstance(p, ObjectStoragePath) and p.conn_id == "lake"
            print("read", p.read_text())
            return p.read_text()

        read(write())
    run = dag.test()
    assert run.ti("write").state.value == "success", run.ti("write").log
    assert run.ti("read").state.value == "success", run.ti("read").log
    assert "read 42" in run.ti("read").log
