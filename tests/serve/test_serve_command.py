import pytest

from omnireid.cli import main
from tests.serve.helpers import READ_KEY


@pytest.mark.parametrize(
    ("extra", "env", "reason"),
    [
        ([], {}, "no API keys: give --keys FILE or set OMNIREID_READ_KEYS"),
        (["--no-auth", "--host", "0.0.0.0"], {}, "--no-auth is for loopback hosts only"),
        (["--no-auth"], {"OMNIREID_READ_KEYS": READ_KEY}, "--no-auth with API keys given"),
        (["--no-auth", "--threshold", "0.5", "--verification", "v.json"], {}, "not both"),
        (["--no-auth", "--threshold", "1.5"], {}, "--threshold: must be a finite number >= -1"),
        (["--no-auth", "--target-fpr", "0.01"], {}, "--target-fpr picks a threshold from"),
        (
            ["--no-auth", "--store", "faiss", "--qdrant-url", "http://127.0.0.1:6333"],
            {},
            "is for",
        ),
        (
            ["--no-auth", "--store", "qdrant"],
            {},
            "--store qdrant without --qdrant-url would run qdrant-client's local mode, which "
            "unpickles",
        ),
        (["--no-auth", "--unsafe-local-qdrant"], {}, "--unsafe-local-qdrant is for --store"),
        (
            ["--no-auth", "--store", "qdrant", "--unsafe-local-qdrant", "--qdrant-url", "u"],
            {},
            "--unsafe-local-qdrant is for --store qdrant without --qdrant-url",
        ),
        (["--no-auth", "--max-request-megapixels", "0"], {}, "must be a finite number > 0"),
        (["--no-auth", "--max-request-megapixels", "1e-9"], {}, "must be positive"),
    ],
)
def test_serve_refuses_unsafe_or_contradictory_settings(
    tmp_path, toy_weights, monkeypatch, capsys, extra, env, reason
):
    for name in ("OMNIREID_READ_KEYS", "OMNIREID_WRITE_KEYS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = ["serve", "--index", str(tmp_path / "g"), "--weights", str(toy_weights), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert reason in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "g").exists()


def test_serve_backend_is_the_deprecated_name_of_store(tmp_path, toy_weights, capsys):
    """``--backend`` named the vector store before ``--store``; it still does, with a warning
    (``backend`` is the inference runner's word: ``--extractor``)."""
    args = ["serve", "--index", str(tmp_path / "g"), "--weights", str(toy_weights), "--no-auth"]
    assert main([*args, "--backend", "qdrant"]) == 2
    err = capsys.readouterr().err
    assert "--backend is deprecated: it is now --store" in err
    assert "--store qdrant without --qdrant-url" in err  # --backend qdrant read as --store qdrant
    assert main([*args, "--store", "faiss", "--backend", "qdrant"]) == 2
    err = capsys.readouterr().err
    assert "--backend is the deprecated name of --store: give --store only" in err


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x80\x04\x95binary", "is not a key file (not UTF-8 text: invalid start byte)"),
        (b"\xef\xbb\xbfread " + READ_KEY.encode() + b"\n", "expected 'read KEY' or 'write KEY'"),
    ],
)
def test_a_key_file_that_is_not_text_is_one_line(tmp_path, toy_weights, capsys, content, reason):
    """A binary key file was a UnicodeDecodeError traceback."""
    keys = tmp_path / "keys.txt"
    keys.write_bytes(content)
    args = ["serve", "--index", str(tmp_path / "g"), "--weights", str(toy_weights)]
    assert main([*args, "--keys", str(keys)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{keys}" in err and reason in err, err
    assert not (tmp_path / "g").exists()
