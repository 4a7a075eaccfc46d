"""The object store speaks any fsspec URL."""

from millstream.store import objects


def test_write_and_read_on_fsspec_urls(tmp_path):
    for base in (f"file://{tmp_path}/res", str(tmp_path / "plain"), "memory://millstream-test"):
        url = objects.result_url(base, "d", "manual__2026-01-01T00:00:00+00:00", "t", 3, 2, "return_value")
        assert url.endswith("/d/manual__2026-01-01T00_00_00_00_00/t/3/try2/return_value.json")
        objects.write(url, '{"a": 1}')
        assert objects.read(url) == '{"a": 1}'
