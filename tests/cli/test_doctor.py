"""`aictl doctor` and `aictl --version`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from aictl.cli import run
from aictl.workspace import Workspace
from tests.cli.conftest import Result


def checks(out: str) -> dict[str, dict[str, str]]:
    return {check["name"]: check for check in json.loads(out)["checks"]}


def test_a_healthy_repository_passes_every_check(aictl: Callable[..., Result]) -> None:
    code, out, err = aictl("doctor", "--json")
    assert code == 0, err
    found = checks(out)
    assert [name for name in found] == [
        "python", "git", "database", "policy", "daemon", "disk", "sandbox", "claude",
    ]  # fmt: skip
    assert all(check["level"] == "ok" for check in found.values()), found
    assert "schema" in found["database"]["found"]
    code, out, _ = aictl("doctor")
    assert code == 0 and "OK  claude" in out


def test_each_problem_is_named_with_what_to_do(
    aictl: Callable[..., Result], workspace: Workspace, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    (workspace.state_dir / "policy.yaml").write_text("version: 1\nsettings:\n  concurency: 2\n")
    bare = tmp_path / "bin"
    bare.mkdir()
    git = shutil.which("git")
    assert git
    (bare / "git").symlink_to(git)
    monkeypatch.setenv("PATH", str(bare))
    code, out, _ = aictl("doctor", "--json")
    assert code == 1
    found = checks(out)
    assert found["policy"]["level"] == "error" and "concurency" in found["policy"]["found"]
    assert found["sandbox"]["level"] == "error"
    assert "bubblewrap and socat missing" in found["sandbox"]["found"]
    assert "apt-get install bubblewrap socat" in str(found["sandbox"]["hint"])
    assert found["git"]["level"] == "ok"


def test_outside_a_repository_doctor_says_to_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AICTL_DB", raising=False)
    code = run(["doctor", "--json"])
    found = checks(capsys.readouterr().out)
    assert code == 1
    assert found["git"]["hint"] == "git init" and found["state"]["level"] == "error"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert run(["--version"]) == 0
    assert capsys.readouterr().out == f"aictl {version('aictl')}\n"
