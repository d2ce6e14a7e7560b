"""Which files a tool call writes, and whether the task's globs allow it (pure)."""

from __future__ import annotations

import pytest

from aictl.domain.toolcalls import outside_paths, path_denial, repo_relative, written_paths

ROOT = "/work/repo"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/work/repo/src/a.py", "src/a.py"),
        ("src/./b/../a.py", "src/a.py"),
        ("/work/repo/", None),
        ("/work/repo", None),
        ("/work/repo-other/a.py", None),  # a sibling folder sharing the prefix
        ("../outside.txt", None),
        ("src/../../etc/passwd", None),
        ("/etc/passwd", None),
    ],
)
def test_repo_relative_normalises_and_refuses_what_leaves_the_repository(
    path: str, expected: str | None
) -> None:
    assert repo_relative(path, ROOT) == expected


def test_only_writing_tools_name_written_files() -> None:
    assert written_paths("Write", {"file_path": "a.txt", "content": "x"}) == ["a.txt"]
    assert written_paths("NotebookEdit", {"notebook_path": "n.ipynb"}) == ["n.ipynb"]
    assert written_paths("Read", {"file_path": "a.txt"}) == []
    assert written_paths("Bash", {"command": "echo > a.txt"}) == []
    assert written_paths("Edit", {"file_path": 3}) == []


@pytest.mark.parametrize(
    ("tool", "tool_input", "paths", "denial"),
    [
        ("Write", {"file_path": "/work/repo/src/a.py"}, ["src/**"], None),
        ("Edit", {"file_path": "src/x/y.py"}, ["src/*/y.py"], None),
        ("Read", {"file_path": "/etc/passwd"}, ["src/**"], None),
        ("Bash", {"command": "rm -rf /"}, [], None),  # not a file tool: policy decides
        ("Write", {"file_path": "docs/a.md"}, ["src/**"], "docs/a.md is outside task 7's paths"),
        ("Write", {"file_path": "/etc/passwd"}, ["**"], "is outside the repository"),
        ("Write", {"file_path": "../x"}, ["**"], "is outside the repository"),
        ("Write", {"file_path": "a.txt"}, [], "declares no paths"),
        ("Write", {"content": "no path"}, ["**"], "names no file"),
        ("MultiEdit", {"file_path": "src/a.pyc"}, ["src/*.py"], "outside task 7's paths"),
    ],
)
def test_path_denial(
    tool: str, tool_input: dict[str, object], paths: list[str], denial: str | None
) -> None:
    found = path_denial(tool, tool_input, paths, ROOT, 7)
    if denial is None:
        assert found is None
    else:
        assert found is not None and denial in found


def test_outside_paths_lists_files_no_glob_covers() -> None:
    files = ["src/a.py", "docs/b.md", "src/deep/c.py", "README"]
    assert outside_paths(files, ["src/**"]) == ["docs/b.md", "README"]
    assert outside_paths(files, ["src/*.py", "docs/**"]) == ["src/deep/c.py", "README"]


def test_entering_a_worktree_is_denied_whatever_the_tasks_paths() -> None:
    why = path_denial("EnterWorktree", {"name": "w"}, ["**"], "/repo", 4)
    assert why is not None and "outside task 4's paths" in why and "git branch" in why
