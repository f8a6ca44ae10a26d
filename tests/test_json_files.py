"""A JSON file nested deeper than Python's recursion limit (a few KB of ``[``) makes the
decoder raise RecursionError, which no reader caught: a traceback. Every reader of a file
given to omnireid refuses it with the file named (``errors.JSON_ERRORS``)."""

import pytest

from omnireid.cli import main
from omnireid.deploy.index_file import read_header
from omnireid.errors import OmniReIDError
from omnireid.models.registry import read_spec
from omnireid.models.spec import read_spec_file
from omnireid.models.zoo import _read_card
from omnireid.serve.service import read_threshold

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("name", "read"),
    [
        ("index/header.json", lambda p: read_header(p.parent)),
        ("verification.json", lambda p: read_threshold(p, None, None)),
        ("meta.json", read_spec_file),
        ("card.json", _read_card),
        ("child.json", read_spec),
    ],
)
def test_a_deeply_nested_json_file_is_refused_by_name(tmp_path, name, read):
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(DEEP)
    with pytest.raises(OmniReIDError) as caught:
        read(path)
    assert str(path) in str(caught.value) and "recursion" in str(caught.value)


def test_index_query_on_such_a_header_is_one_line(tmp_path, toy_weights, capsys):
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "header.json").write_text(DEEP)
    args = ["index", "query", "--index", str(tmp_path / "index"), "--query", "q.jpg"]
    assert main([*args, "--weights", str(toy_weights)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 1, err
    assert f"{tmp_path / 'index' / 'header.json'} is corrupt (not valid JSON" in err
