"""``aictl setup claude``: register aictl with Claude Code in a project, merging, idempotent.

Three files, all Claude Code's own project files:

- ``.mcp.json``: the ``aictl`` server (``aictl mcp serve``) beside the user's other servers;
- ``.claude/settings.json``: a ``PreToolUse`` hook (``aictl hook pre-tool-use``) on the tools
  that write files and on ``Bash``, a ``SessionStart`` hook (``aictl prime``), and ``aictl``
  in ``enabledMcpjsonServers`` (so the project server needs no interactive approval);
- ``.claude/settings.local.json``: ``mcp__aictl`` in ``permissions.allow`` (its tools decide
  through aictl's own policy). Not in ``settings.json``: ``claude -p`` (2.1.332) ignores an
  allow rule for MCP tools there and honours it in the local file, so an agent without
  ``--allowedTools`` could not call a single aictl tool. The local file is personal by
  Claude Code's convention; if git does not ignore it, ``info/exclude`` gets a line for it
  (untracked, so the user's ``.gitignore`` stays theirs).

What the user has is kept: other servers, other hooks, other settings. An entry of ours is
replaced only if it differs (another ``--command``), so a second run changes nothing. A file
that is not a JSON object is refused (``InvalidInput`` naming it), never overwritten.
"""

from __future__ import annotations

import difflib
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aictl.errors import AictlError, InvalidInput

HOOK_MATCHER = "Write|Edit|MultiEdit|NotebookEdit|Bash"
SERVER = "aictl"
LOCAL_SETTINGS = ".claude/settings.local.json"


@dataclass(frozen=True)
class FileChange:
    path: Path
    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def name(self, root: Path) -> str:
        """The path relative to ``root``, or whole when outside it (a worktree's exclude)."""
        return (
            str(self.path.relative_to(root)) if self.path.is_relative_to(root) else str(self.path)
        )

    def diff(self, root: Path) -> str:
        name = self.name(root)
        return "".join(
            difflib.unified_diff(
                (self.before or "").splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"a/{name}" if self.before is not None else "/dev/null",
                tofile=f"b/{name}",
            )
        )


def _load(path: Path) -> tuple[str | None, dict[str, Any]]:
    if not path.exists():
        return None, {}
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})",
            hint="fix or move the file, then run `aictl setup claude` again",
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a JSON object", hint="fix or move the file")
    return text, data


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


def _section(data: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    value = data.setdefault(key, kind())
    if not isinstance(value, kind):
        raise InvalidInput(f"{path}: {key!r} is not a JSON {kind.__name__}", hint="fix the file")
    return value


def _put_hook(hooks: dict[str, Any], event: str, command: str, matcher: str | None) -> None:
    """Ours in ``event``: entries running an ``aictl`` command of that kind are replaced by
    one entry; everything else stays in its place."""
    entries = hooks.setdefault(event, [])
    ours: dict[str, Any] = {"hooks": [{"type": "command", "command": command}]}
    if matcher is not None:
        ours = {"matcher": matcher, **ours}
    verb = command.rsplit(maxsplit=1)[-1]
    kept = []
    placed = False
    for entry in entries:
        commands = [h.get("command", "") for h in entry.get("hooks", []) if isinstance(h, dict)]
        if any(_is_ours(c, verb) for c in commands):
            if not placed:
                kept.append(ours)
                placed = True
            continue
        kept.append(entry)
    if not placed:
        kept.append(ours)
    hooks[event] = kept


def _is_ours(command: str, verb: str) -> bool:
    words = command.split()
    return len(words) >= 2 and Path(words[0]).name == "aictl" and words[-1] == verb


def plan(root: Path, command: str = "aictl") -> list[FileChange]:
    """The files as they are and as they should be (nothing written): ``.mcp.json``,
    ``.claude/settings.json``, ``.claude/settings.local.json`` and, when git would otherwise
    track the local settings, the repository's ``info/exclude``."""
    quoted = shlex.quote(command)
    mcp_path = root / ".mcp.json"
    before, mcp = _load(mcp_path)
    servers = _section(mcp, "mcpServers", dict, mcp_path)
    servers[SERVER] = {"command": command, "args": ["mcp", "serve"]}
    changes = [FileChange(mcp_path, before, _dump(mcp))]

    settings_path = root / ".claude" / "settings.json"
    before, settings = _load(settings_path)
    hooks = _section(settings, "hooks", dict, settings_path)
    _put_hook(hooks, "PreToolUse", f"{quoted} hook pre-tool-use", HOOK_MATCHER)
    _put_hook(hooks, "SessionStart", f"{quoted} prime", None)
    enabled = _section(settings, "enabledMcpjsonServers", list, settings_path)
    if SERVER not in enabled:
        enabled.append(SERVER)
    changes.append(FileChange(settings_path, before, _dump(settings)))

    local_path = root / LOCAL_SETTINGS
    before, local = _load(local_path)
    allowed = _section(_section(local, "permissions", dict, local_path), "allow", list,
                       local_path)  # fmt: skip
    if f"mcp__{SERVER}" not in allowed:
        allowed.append(f"mcp__{SERVER}")
    changes.append(FileChange(local_path, before, _dump(local)))
    exclude = _exclusion(root)
    if exclude is not None:
        changes.append(exclude)
    return changes


def _exclusion(root: Path) -> FileChange | None:
    """The ``info/exclude`` change that keeps the local settings out of git, or None (not a
    git repository, or already ignored by any of git's ignore files)."""
    from aictl.services.worktrees import Git, exclude_file, excluded_text

    git = Git(root, os.environ)
    try:
        code, _, _ = git.run("check-ignore", "-q", "--", LOCAL_SETTINGS, check=False)
        if code != 1:  # 0: ignored already; 128: not a repository (or git failed)
            return None
        path = exclude_file(git)
        before = path.read_text(encoding="utf-8") if path.is_file() else None
    except (AictlError, OSError):
        return None
    return FileChange(path, before, excluded_text(before or "", f"/{LOCAL_SETTINGS}"))


def apply(changes: list[FileChange]) -> list[FileChange]:
    """Write the files that change; returns those."""
    written = []
    for change in changes:
        if change.changed:
            change.path.parent.mkdir(parents=True, exist_ok=True)
            change.path.write_text(change.after, encoding="utf-8")
            written.append(change)
    return written
