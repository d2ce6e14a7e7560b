"""Secrets never reach a decision record; everything else does."""

from __future__ import annotations

import pytest

from aictl.domain.redact import REDACTED, digest, names_secret, redact


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


@pytest.mark.parametrize(
    "key",
    ["GITHUB_TOKEN", "apiKey", "X-Auth-Token", "client_secret", "db_password", "API_KEY",
     "passWord", "private.key", "HTTPAuthorization", "session-key", "credentials", "Cookie"],
)  # fmt: skip
def test_keys_naming_a_secret_by_a_whole_word(key: str) -> None:
    assert names_secret(key)
    assert redact({key: "value"}) == ({key: REDACTED}, [key])


@pytest.mark.parametrize(
    "key", ["max_tokens", "author", "bypass", "tokenizer", "key", "passage", "authority"]
)
def test_keys_that_only_contain_a_secret_name_are_kept(key: str) -> None:
    assert not names_secret(key)
    assert redact({key: "value"}) == ({key: "value"}, [])


@pytest.mark.parametrize(
    ("command", "clean"),
    [
        ("FOO_KEY=abc123 make", f"FOO_KEY={REDACTED} make"),
        ("export API_TOKEN=t0ps3cret && deploy", f"export API_TOKEN={REDACTED} && deploy"),
        ("DB_PASS='a b' psql", f"DB_PASS={REDACTED} psql"),
        ('GITHUB_TOKEN="x y" gh pr list', f"GITHUB_TOKEN={REDACTED} gh pr list"),
        ("tool --password=hunter2 --verbose", f"tool --password={REDACTED} --verbose"),
        ("curl 'https://x/?page=2&token=abc'", f"curl 'https://x/?page=2&token={REDACTED}'"),
    ],
)
def test_assignments_to_secret_names_inside_text(command: str, clean: str) -> None:
    assert redact({"tool": {"command": command}}) == (
        {"tool": {"command": clean}},
        ["tool.command"],
    )


def test_ordinary_assignments_inside_text_are_kept() -> None:
    for command in ["DEBUG=1 PATH=/usr/bin make", "git log key=value", "MAX_TOKENS=800 run"]:
        assert redact({"command": command}) == ({"command": command}, [])
