"""Secrets never reach a decision record; everything else does."""

from __future__ import annotations

from aictl.domain.redact import REDACTED, digest, redact


def test_secret_keys_are_redacted_with_their_paths() -> None:
    data = {
        "tool": {
            "name": "Bash",
            "input": {"command": "ls", "env": {"API_KEY": "abc", "HOME": "/h"}},
        },
        "password": "hunter2",
        "empty_token": "",
    }
    clean, paths = redact(data)
    assert clean["tool"]["input"]["env"] == {"API_KEY": REDACTED, "HOME": "/h"}
    assert clean["password"] == REDACTED and clean["empty_token"] == ""
    assert paths == ["tool.input.env.API_KEY", "password"]
    assert data["password"] == "hunter2"  # the input is not modified


def test_secret_looking_values_are_redacted_inside_text() -> None:
    command = "curl -H 'Authorization: Bearer abcdefghijklmnopqrstu' https://x"
    clean, paths = redact({"cmd": command, "keys": ["sk-ant-api03-aaaaaaaaaaaaaaaaaaaa", "plain"]})
    assert clean["cmd"] == f"curl -H 'Authorization: {REDACTED}' https://x"
    assert clean["keys"] == [REDACTED, "plain"]
    assert paths == ["cmd", "keys[0]"]
    for secret in ["ghp_" + "a" * 30, "AKIA" + "B" * 16, "xoxb-123456789012-abc",
                   "-----BEGIN RSA PRIVATE KEY-----\nMII"]:  # fmt: skip
        assert redact({"v": secret})[1] == ["v"], secret


def test_ordinary_values_pass_unchanged() -> None:
    data = {"task": {"title": "Rotate the token cache", "paths": ["src/auth/**"], "priority": 3}}
    assert redact(data) == (data, [])


def test_digest_is_canonical() -> None:
    assert digest({"b": 1, "a": [1, 2]}) == digest({"a": [1, 2], "b": 1})
    assert digest({"a": 1}) != digest({"a": 2})
    assert len(digest({})) == 64
