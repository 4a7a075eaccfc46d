"""The object store speaks any fsspec URL."""

from millstream.store import objects


def test_write_and_read_on_fsspec_urls(tmp_path):
    for base in (f"file://{tmp_path}/res", str(tmp_path / "plain"), "memory://millstream-test"):
        url = objects.result_url(base, "d", 17, "grp.t", 3, 2, "return_value")
        assert url.endswith("/d/run17/grp.t/3/try2/return_value.json")
        objects.write(url, '{"a": 1}')
        assert objects.read(url) == '{"a": 1}'
    # A multiple_outputs key is the user's: encoded, it cannot climb out of the base.
    evil = objects.result_url(str(tmp_path / "base"), "d", 1, "t", -1, 1, "../../../etc/x")
    assert evil.startswith(str(tmp_path / "base") + "/") and "/../" not in evil
