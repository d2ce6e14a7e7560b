"""Which files a tool call writes, and whether the task's globs allow it (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aictl.domain.toolcalls import (
    outside_paths,
    path_denial,
    read_denial,
    repo_relative,
    written_paths,
)

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


def test_a_write_through_a_symbolic_link_is_judged_where_it_lands(tmp_path: Path) -> None:
    import os

    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "docs").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "src" / "out").symlink_to(outside)
    (root / "src" / "docs").symlink_to(root / "docs")
    (root / "src" / "inner").symlink_to(root / "src")

    def denial(path: str) -> str | None:
        return path_denial("Write", {"file_path": path}, ["src/**"], str(root), 3, os.path.realpath)

    out = denial("src/out/x.txt")
    assert out is not None and "leads outside the repository" in out
    docs = denial(f"{root}/src/docs/x.md")
    assert docs is not None and "docs/x.md is outside task 3's paths" in docs
    assert denial("src/inner/x.txt") is None  # lands in src/: allowed
    assert denial("src/new/x.txt") is None  # nothing there yet: judged as named


@pytest.mark.parametrize(
    ("tool", "tool_input", "refused"),
    [
        ("Read", {"file_path": "src/a.py"}, False),
        ("Read", {"file_path": "/repo/src/a.py"}, False),
        ("Read", {"file_path": "/home/me/.ssh/id_rsa"}, True),
        ("Read", {"file_path": "../secrets.txt"}, True),
        ("Grep", {"pattern": "x", "path": "/etc"}, True),
        ("Grep", {"pattern": "x"}, False),
        ("Glob", {"pattern": "**/*.py"}, False),
        ("Glob", {"pattern": "/etc/**"}, True),
        ("Glob", {"pattern": "*.py", "path": "/repo"}, False),
        ("LS", {"path": "/"}, True),
        ("Write", {"file_path": "/etc/x"}, False),  # writes are path_denial's
        ("Bash", {"command": "cat /etc/passwd"}, False),  # the sandbox's
    ],
)
def test_reads_outside_the_repository_are_refused(
    tool: str, tool_input: dict[str, object], refused: bool
) -> None:
    found = read_denial(tool, tool_input, "/repo")
    assert (found is not None) == refused
    if refused:
        assert found is not None and "outside the repository" in found


def test_a_read_through_a_symbolic_link_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    import os

    root = tmp_path / "repo"
    root.mkdir()
    (root / "key").symlink_to(tmp_path / "secret")
    found = read_denial("Read", {"file_path": "key"}, str(root), os.path.realpath)
    assert found is not None and "(a symbolic link)" in found
