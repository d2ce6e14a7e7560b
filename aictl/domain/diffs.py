"""Reading the unified diffs stored in evidence: what ``task evidence --stat`` and the colours
of ``task evidence`` need (pure text in, values out)."""

from __future__ import annotations

from dataclasses import dataclass

BAR_WIDTH = 40
"""The longest run of ``+`` and ``-`` a ``--stat`` line draws; more changes are scaled down."""


@dataclass(frozen=True)
class FileChange:
    path: str
    insertions: int = 0
    deletions: int = 0
    binary: bool = False


def diff_stat(diff: str) -> list[FileChange]:
    """The files a unified (``git diff``) text changes, in order, with the lines each adds
    and removes, as ``git diff --stat`` counts them. Header lines (``--- a/x``, ``+++ b/x``)
    are not counted: only lines inside hunks are."""
    changes: list[FileChange] = []
    path, insertions, deletions, binary, in_hunk = "", 0, 0, False, False

    def close() -> None:
        if path:
            changes.append(FileChange(path, insertions, deletions, binary))

    for line in diff.splitlines():
        if line.startswith("diff --git "):
            close()
            path, insertions, deletions, binary, in_hunk = _git_path(line), 0, 0, False, False
        elif line.startswith("@@"):
            in_hunk = True
        elif not in_hunk and line.startswith(("--- ", "+++ ")) and line[4:] != "/dev/null":
            path = _strip_prefix(line[4:])  # a diff without git's header names files here
        elif not in_hunk and line.startswith("Binary files "):
            binary = True
        elif in_hunk and line.startswith("+"):
            insertions += 1
        elif in_hunk and line.startswith("-"):
            deletions += 1
    close()
    return changes


def _git_path(header: str) -> str:
    """The new path of a ``diff --git a/x b/x`` header (its second half)."""
    rest = header[len("diff --git ") :]
    half = rest.find(" b/")
    return rest[half + 3 :] if half >= 0 else rest


def _strip_prefix(path: str) -> str:
    path = path.split("\t", maxsplit=1)[0]
    return path[2:] if path.startswith(("a/", "b/")) else path


def stat_lines(changes: list[FileChange]) -> list[str]:
    """``git diff --stat``'s form: `` path | 3 ++-`` per file and a summary line."""
    if not changes:
        return ["no changes"]
    width = max(len(change.path) for change in changes)
    most = max(change.insertions + change.deletions for change in changes) or 1
    scale = min(1.0, BAR_WIDTH / most)
    lines = []
    for change in changes:
        total = change.insertions + change.deletions
        if change.binary:
            lines.append(f" {change.path.ljust(width)} | Bin")
            continue
        plus, minus = round(change.insertions * scale), round(change.deletions * scale)
        bar = "+" * max(plus, 1 if change.insertions else 0)
        bar += "-" * max(minus, 1 if change.deletions else 0)
        lines.append(f" {change.path.ljust(width)} | {total} {bar}".rstrip())
    insertions = sum(change.insertions for change in changes)
    deletions = sum(change.deletions for change in changes)
    files = f"{len(changes)} file{'s' if len(changes) != 1 else ''} changed"
    lines.append(
        f" {files}, {insertions} insertion{'s' if insertions != 1 else ''}(+), "
        f"{deletions} deletion{'s' if deletions != 1 else ''}(-)"
    )
    return lines


def line_kind(line: str) -> str:
    """What a line of a unified diff is, for its colour: ``header`` (``diff --git``,
    ``index``, ``---``, ``+++``), ``hunk`` (``@@``), ``added``, ``removed`` or ``context``."""
    if line.startswith(("diff --git ", "index ", "--- ", "+++ ", "new file", "deleted file")):
        return "header"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "added"
    if line.startswith("-"):
        return "removed"
    return "context"
