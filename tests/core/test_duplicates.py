"""The rule for a dag_id that several files define, as pure data."""

from __future__ import annotations

from millstream.core.duplicates import Duplicate, claim, duplicated_ids, file_order, freed, message
from millstream.sdk.loader import dag_files


def test_files_are_ordered_as_the_loader_lists_them(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a-b.py", "a/x.py", "b.py"):
        (tmp_path / name).write_text("")
    listed = dag_files(tmp_path)
    assert sorted(reversed(listed), key=file_order) == listed
    assert [p[len(str(tmp_path)) + 1 :] for p in listed] == ["a/x.py", "a-b.py", "b.py"]  # not str order


def test_the_holder_keeps_then_the_first_new_file():
    defined = {"/d/b.py": ["x", "y"], "/d/a.py": ["x", "y"], "/d/c.py": ["y"]}
    assert claim(defined, {"y": "/d/c.py"}) == [
        Duplicate("y", "/d/a.py", "/d/c.py"),
        Duplicate("x", "/d/b.py", "/d/a.py"),
        Duplicate("y", "/d/b.py", "/d/c.py"),
    ]
    # A holder parsed again without the DAG lets it go; one not parsed now keeps it.
    assert claim({"/d/c.py": [], "/d/b.py": ["y"]}, {"y": "/d/c.py"}) == []
    assert claim({"/d/b.py": ["y"]}, {"y": "/d/c.py"}) == [Duplicate("y", "/d/b.py", "/d/c.py")]


def test_an_import_error_names_both_files_and_says_which_ids_it_lost():
    lost = [Duplicate("x.1", "/d/b.py", "/d/a.py"), Duplicate("y-2", "/d/b.py", "/d/c.py")]
    text = message(lost)
    assert "/d/a.py" in text and "/d/b.py" in text and "/d/c.py" in text
    assert duplicated_ids(text) == ["x.1", "y-2"]
    assert duplicated_ids("SyntaxError: invalid syntax") == []
    errors = {"/d/b.py": text, "/d/e.py": "SyntaxError: invalid syntax"}
    assert freed(errors, {"x.1": "/d/a.py", "y-2": "/d/c.py"}) == []
    assert freed(errors, {"x.1": "/d/a.py"}) == ["/d/b.py"]
