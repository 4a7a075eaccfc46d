"""ObjectStoragePath: Airflow 3's path on any fsspec filesystem, and a connection it
names refused (no Connections yet) with a message instead of other credentials."""

from __future__ import annotations

import pytest

from millstream import ObjectStoragePath
from millstream.sdk.objectstorage import ConnectionsNotAvailableError


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


def test_a_connection_in_the_path_is_kept_and_refused_at_use():
    base = ObjectStoragePath("s3://aws_default@airflow-tutorial-data/")
    child = base / "air_quality.parquet"
    assert (base.conn_id, child.conn_id) == ("aws_default", "aws_default")
    assert str(child) == "s3://airflow-tutorial-data/air_quality.parquet"
    with pytest.raises(
        ConnectionsNotAvailableError, match="conn_id='aws_default': Millstream has no Connections"
    ):
        child.exists()
    assert ObjectStoragePath("memory://b/x", conn_id="other").conn_id == "other"
