"""Which files an agent's tool call writes, and whether its task's paths allow it (pure).

The task's globs are its path locks: while it runs, its agent may write only files they cover.
The names are Claude Code's tools (the same names policy rules use): ``Write``, ``Edit``,
``MultiEdit`` and ``NotebookEdit`` write the file named by their input. Tools that write
through a shell (``Bash``) name no file; policy rules decide those.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePath
from typing import Any

from aictl.domain.globs import covers

WRITING_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
#: Tools that write outside any task's paths by design (a worktree under ``.claude/`` and a
#: git branch): never allowed to a task's agent.
OUTSIDE_TOOLS = frozenset({"EnterWorktree"})
PATH_KEYS = ("file_path", "notebook_path", "path")


def repo_relative(path: str, root: PurePath | str) -> str | None:
    """``path`` (absolute, or relative to ``root``) as a normalised repository-relative path;
    None when it leaves the repository (``..``, another absolute folder) or names the root."""
    base = posixpath.normpath(str(root))
    joined = posixpath.normpath(posixpath.join(base, path))
    if joined == base or not joined.startswith(base.rstrip("/") + "/"):
        return None
    return joined[len(base.rstrip("/")) + 1 :]


#: Tools that read files, and the input keys that name what they read.
READING_TOOLS: Mapping[str, tuple[str, ...]] = {
    "Read": ("file_path",),
    "NotebookRead": ("notebook_path",),
    "Glob": ("path", "pattern"),
    "Grep": ("path",),
    "LS": ("path",),
}


def read_denial(
    tool: str,
    tool_input: Mapping[str, Any],
    root: PurePath | str,
    resolve: Callable[[str], str] | None = None,
) -> str | None:
    """Why a read outside the repository is refused (policy ``reads: repository``), or None.
    A relative path is read in the repository; an absolute one, or one that a symbolic link
    leads out, must stay in it. A ``Glob`` pattern is judged only when it is absolute."""
    for key in READING_TOOLS.get(tool, ()):
        raw = tool_input.get(key)
        if not isinstance(raw, str) or not raw or (key == "pattern" and not raw.startswith("/")):
            continue
        path = repo_relative(raw, root)
        if raw.rstrip("/") in (str(root).rstrip("/"), "."):
            continue  # the repository itself
        if path is not None and resolve is not None:
            inside = repo_relative(resolve(posixpath.join(str(root), path)), resolve(str(root)))
            if inside is None:
                return f"{tool} {path} leads outside the repository (a symbolic link)"
        if path is None:
            return f"{tool} {raw} is outside the repository, and the policy says reads: repository"
    return None


def written_paths(tool: str, tool_input: Mapping[str, Any]) -> list[str]:
    """The files a call writes, as the agent named them; empty for tools that write none."""
    if tool not in WRITING_TOOLS:
        return []
    return [v for key in PATH_KEYS if isinstance(v := tool_input.get(key), str) and v]


def path_denial(
    tool: str,
    tool_input: Mapping[str, Any],
    task_paths: Sequence[str],
    root: PurePath | str,
    task_id: int,
    resolve: Callable[[str], str] | None = None,
) -> str | None:
    """Why the task's paths forbid this call, or None when they allow it.

    A writing call must name its file, inside the repository, covered by one of the task's
    globs. A task without paths locks nothing, so its agent may write nothing.

    ``resolve`` turns an absolute path into the one the file system would write (symbolic
    links followed; the caller passes ``os.path.realpath``): a
    file named ``src/link/x`` where ``src/link`` points elsewhere is judged where it lands.
    """
    if tool in OUTSIDE_TOOLS:
        return (
            f"{tool} makes a worktree and a git branch outside task {task_id}'s paths; "
            "aictl decides where a task works"
        )
    if tool not in WRITING_TOOLS:
        return None
    named = written_paths(tool, tool_input)
    if not named:
        return f"{tool} names no file to write"
    for raw in named:
        path = repo_relative(raw, root)
        if path is not None and resolve is not None:
            landing = repo_relative(resolve(posixpath.join(str(root), path)), resolve(str(root)))
            if landing != path:
                if landing is None:
                    return f"{tool} {path} leads outside the repository (a symbolic link)"
                path = landing
        if path is None:
            return f"{tool} {raw} is outside the repository"
        if not task_paths:
            return f"{tool} {path}: task {task_id} declares no paths, so it may write no file"
        if not any(covers(glob, path) for glob in task_paths):
            return f"{tool} {path} is outside task {task_id}'s paths ({', '.join(task_paths)})"
    return None


def outside_paths(files: Sequence[str], task_paths: Sequence[str]) -> list[str]:
    """The changed ``files`` no glob of the task covers (a backstop after the run, for writes
    no tool call named, such as a shell redirection)."""
    return [f for f in files if not any(covers(glob, f) for glob in task_paths)]
