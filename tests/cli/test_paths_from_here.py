"""`--path` and `lock check` read globs from the current directory, as git reads paths."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from aictl.workspace import Workspace
from tests.cli.conftest import Result


@pytest.fixture
def in_calc(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    (workspace.root / "src" / "calc").mkdir(parents=True)
    monkeypatch.chdir(workspace.root / "src" / "calc")


def test_a_path_given_in_a_subdirectory_is_stored_from_the_root(
    aictl: Callable[..., Result], in_calc: None
) -> None:
    code, out, err = aictl(
        "task", "create", "t", "--path", "util.py", "--path", "../api/**", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["paths"] == ["src/calc/util.py", "src/api/**"]


def test_lock_check_reads_globs_from_the_subdirectory_too(
    aictl: Callable[..., Result], in_calc: None
) -> None:
    aictl("task", "create", "t", "--path", "util.py")
    aictl("task", "claim", "1", "--as", "w1")
    code, out, _ = aictl("lock", "check", "*.py", "--json")
    assert code == 4
    (conflict,) = json.loads(out)
    assert (conflict["glob"], conflict["held"]) == ("src/calc/*.py", "src/calc/util.py")


def test_a_glob_escaping_the_repository_is_refused_by_name(
    aictl: Callable[..., Result], workspace: Workspace, in_calc: None
) -> None:
    code, out, err = aictl("task", "create", "t", "--path", "../../../etc/passwd")
    assert code == 2 and out == ""
    assert "invalid glob '../../../etc/passwd': it is outside the repository" in err
    assert aictl("task", "list", "-q")[1] == ""
    code, _, err = aictl("lock", "check", "../../../*")
    assert code == 2 and "'../../../*': it is outside the repository" in err


def test_inside_a_task_worktree_its_top_stands_for_the_root(
    aictl: Callable[..., Result], workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside = workspace.root / ".ai" / "worktrees" / "task-3-1" / "src"
    inside.mkdir(parents=True)
    monkeypatch.chdir(inside)
    code, out, err = aictl("task", "create", "t", "--path", "*.py", "--json")
    assert code == 0, err
    assert json.loads(out)["paths"] == ["src/*.py"]


def test_the_fast_path_and_task_edit_read_paths_from_here_too(
    aictl: Callable[..., Result],
    in_calc: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from aictl.cli import fast

    assert fast.attempt(["task", "create", "quick", "--path", "util.py", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["paths"] == ["src/calc/util.py"]
    code, out, err = aictl("task", "edit", "1", "--path", "../api/*.py", "--json")
    assert code == 0, err
    assert json.loads(out)["paths"] == ["src/api/*.py"]
