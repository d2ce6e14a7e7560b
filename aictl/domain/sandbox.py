"""Where an agent's shell may write: the OS sandbox of one run, planned from its task (pure).

Claude Code's sandbox (bubblewrap on Linux) mounts read-only everything but the working
directory and the ``allowWrite`` paths, and re-mounts each ``denyWrite`` path read-only inside
those (a deny wins over an allow). Observed with Claude Code 2.1.332: the working directory,
here the repository root, is always writable, and denying it also denies every folder below
it whatever ``allowWrite`` says. So the plan works by directories:

- ``allow``: the literal directory prefix of each of the task's globs (``src/api`` for
  ``src/api/**/*.py``; the root for ``*.md``), the outermost ones only;
- ``deny``: ``.ai/`` and ``.git/`` always (the state database, the audit log, the policy and
  git's own objects, refs and index: no shell ``git checkout``, ``git stash`` or ``git commit``),
  the state database's folder when it lies in the repository, the literal prefixes of globs
  other tasks hold, and every existing entry of each folder on the way from the root to an
  allowed prefix that is not itself on that way.

What the sandbox cannot express, aictl checks after the run: a *new* file in a folder on the
way to an allowed prefix (the root included), or a file inside an allowed prefix that the
task's glob does not cover (``src/*.py`` allows the folder ``src``), is a change outside the
task's paths and fails the task (``outside_changes``). Writes outside the repository are
read-only except the sandbox's own temporary folder.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

#: Never writable to an agent, whatever its task's paths say.
PROTECTED = (".ai", ".git")
_META = frozenset("*?[{")


@dataclass(frozen=True)
class SandboxPlan:
    """Repository-relative folders and files (``""`` is the root) an agent's shell may write
    under, and those it may not, the deny winning."""

    allow: tuple[str, ...]
    deny: tuple[str, ...]

    def absolute(self, root: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``allow`` and ``deny`` as absolute paths under ``root``."""

        def join(path: str) -> str:
            return posixpath.join(root, path) if path else root

        return tuple(map(join, self.allow)), tuple(map(join, self.deny))


def literal_folder(glob: str) -> str:
    """The longest folder every path the glob matches lies in: its segments before the first
    one with a wildcard, less the last segment (a file name) when the glob is all literal."""
    segments = glob.split("/")
    literal: list[str] = []
    for segment in segments:
        if _META & set(segment):
            return "/".join(literal)
        literal.append(segment)
    return "/".join(literal[:-1])


def _outermost(folders: Iterable[str]) -> list[str]:
    kept: list[str] = []
    for folder in sorted(set(folders), key=lambda f: (f.count("/") if f else -1, f)):
        if not any(_within(folder, outer) for outer in kept):
            kept.append(folder)
    return kept


def _within(path: str, folder: str) -> bool:
    return folder in ("", path) or path.startswith(folder + "/")


def plan_sandbox(
    task_paths: Sequence[str],
    held_by_others: Sequence[str],
    listing: Callable[[str], Sequence[str]],
    *,
    state_folder: str | None = None,
) -> SandboxPlan:
    """The sandbox of a run of a task with ``task_paths``, while other tasks hold
    ``held_by_others``. ``listing(folder)`` names the entries of a repository folder (``""``
    for the root; empty when it does not exist). ``state_folder`` is the state database's
    folder relative to the root, when it lies in the repository.

    A task without paths may write nothing: every entry of the root is denied."""
    allow = _outermost(literal_folder(glob) for glob in task_paths)
    # the folders strictly above an allowed one (the root, when no folder is allowed)
    on_the_way = set() if allow else {""}
    for folder in allow:
        parts = folder.split("/") if folder else []
        on_the_way.update("/".join(parts[:n]) for n in range(len(parts)))
    deny: set[str] = set(PROTECTED)
    if state_folder:
        deny.add(state_folder)
    for folder in on_the_way:
        for name in listing(folder):
            entry = posixpath.join(folder, name) if folder else name
            if entry in on_the_way or entry in allow:
                continue
            deny.add(entry)
    for glob in held_by_others:
        theirs = literal_folder(glob)
        # a deny of a folder holding ours would deny ours too: the gate and the check after
        # the run keep those apart
        if theirs and not any(_within(mine, theirs) for mine in allow):
            deny.add(theirs)
    return SandboxPlan(tuple(allow), tuple(sorted(deny)))
