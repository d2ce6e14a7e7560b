"""Locks name the paths they really cover: symbolic links in a glob's literal part are
resolved before locking (issue 18)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from aictl.workspace import Workspace
from tests.cli.conftest import Result


def test_a_link_to_a_locked_folder_conflicts_with_it(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    (workspace.root / "real").mkdir()
    (workspace.root / "lnk").symlink_to(workspace.root / "real")
    code, out, err = aictl("task", "create", "through the link", "--path", "lnk/**", "--json")
    assert code == 0, err
    assert json.loads(out)["paths"] == ["real/**"]  # stored as what it covers
    assert aictl("task", "create", "direct", "--path", "real/x.py")[0] == 0
    assert aictl("task", "claim", "1", "--as", "a")[0] == 0
    code, _, err = aictl("task", "claim", "2", "--as", "b")
    assert code == 4 and "real/x.py" in err  # the lock held through the link


def test_a_lock_that_leads_outside_the_repository_is_refused(
    aictl: Callable[..., Result], workspace: Workspace, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (workspace.root / "etc-link").symlink_to(outside)
    code, out, err = aictl("task", "create", "escape", "--path", "etc-link")
    assert code == 2 and out == ""
    assert "etc-link leads outside the repository through a symbolic link" in err
    code, _, err = aictl("task", "create", "escape", "--path", "etc-link/**/*.conf")
    assert code == 2 and "outside the repository" in err
    assert aictl("task", "list", "-q")[1] == ""


def test_a_link_to_the_root_locks_the_whole_repository(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    (workspace.root / "here").symlink_to(workspace.root)
    code, out, err = aictl("task", "create", "all", "--path", "here/**", "--json")
    assert code == 0, err
    assert json.loads(out)["paths"] == ["**"]
