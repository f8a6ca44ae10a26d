import pytest

from omnireid.errors import UsageError
from omnireid.serve.auth import load_keys
from tests.serve.helpers import READ_KEY, WRITE_KEY


def test_keys_from_a_file_and_the_environment(tmp_path, caplog):
    file = tmp_path / "keys"
    file.write_text(f"# site keys\nread {READ_KEY}\n\nwrite {WRITE_KEY}  # admin\n")
    file.chmod(0o600)
    keys = load_keys(file, env={"OMNIREID_READ_KEYS": "env-read-key-0000000000, "})
    assert keys.enabled and not caplog.records
    assert keys.scope_of(READ_KEY) == "read" and keys.scope_of(WRITE_KEY) == "write"
    assert keys.scope_of("env-read-key-0000000000") == "read"
    assert keys.scope_of(READ_KEY + "x") is None
    assert READ_KEY.encode() not in repr(keys).encode()  # only digests are kept
    file.chmod(0o644)
    load_keys(file, env={})
    assert "can be read by other users" in caplog.text


def test_bad_key_files_and_weak_keys_are_refused(tmp_path):
    file = tmp_path / "keys"
    file.write_text(f"admin {WRITE_KEY}\n")
    with pytest.raises(UsageError, match=r"keys:1: expected 'read KEY' or 'write KEY'"):
        load_keys(file, env={})
    with pytest.raises(UsageError, match="at least 16 printable ASCII characters"):
        load_keys(None, env={"OMNIREID_WRITE_KEYS": "secret"})
    assert not load_keys(None, env={}).enabled


def test_a_hash_inside_a_key_is_refused_not_cut(tmp_path):
    """Cut at '#', 'write abcdefghijklmnop#qrs' would have made the key 'abcdefghijklmnop':
    a server accepting another key than the one written, silently."""
    file = tmp_path / "keys"
    file.write_text(f"read {READ_KEY}#not-a-comment\n")
    with pytest.raises(UsageError, match=r"keys:1: '#' inside a key"):
        load_keys(file, env={})
    file.write_text(f"#site keys\n  # indented comment\nwrite {WRITE_KEY}\t# admin\n")
    keys = load_keys(file, env={})  # a '#' after a space (or a tab) starts a comment
    assert keys.scope_of(WRITE_KEY) == "write" and keys.scope_of(READ_KEY) is None
    for key in [f"{WRITE_KEY}#x", f"{WRITE_KEY}é"]:  # env: no '#', and no header can carry é
        with pytest.raises(UsageError, match="without spaces, '#' or ','"):
            load_keys(None, env={"OMNIREID_WRITE_KEYS": key})
    file.write_text(f"read {READ_KEY}\nwrite {WRITE_KEY},x\n")  # ',' separates env keys
    with pytest.raises(UsageError, match=r"keys:2: API keys must be .* without spaces, '#' or ','"):
        load_keys(file, env={})
