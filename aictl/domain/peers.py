"""Agents as peers: who an agent is, and whether its file write may land (pure).

Agents that people start themselves (Claude Code in a terminal) reach aictl through the MCP
server and through Claude Code hooks. All three processes (the MCP server, the ``PreToolUse``
hook, the ``SessionStart`` hook) are children of the same ``claude`` process, so they must
agree on the agent's name without talking to each other:

- ``AICTL_AGENT`` when set (the documented way: one name per terminal or per session);
- otherwise ``claude-<pid>`` of the nearest ancestor process named ``claude``: one name per
  Claude Code session, the same for its MCP server and every hook it runs;
- otherwise ``agent-<session id>`` of this process (a shell started by hand).

The readers of ``/proc`` are passed in (see ``aictl.domain.actors``), so this stays testable.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from aictl.domain.actors import MAX_ANCESTORS, ReadStat, command_name, parent_pid
from aictl.domain.globs import covers
from aictl.domain.toolcalls import OUTSIDE_TOOLS, WRITING_TOOLS, path_denial, repo_relative

AGENT_ENV = "AICTL_AGENT"
"""The environment variable that names the agent (its lease holder name)."""
CLAUDE_PROCESS = "claude"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}")


def agent_name(environ: Mapping[str, str], pid: int, read_stat: ReadStat, session_id: int) -> str:
    """The agent's name for leases and decision records (see the module's docstring).

    ``pid`` is this process; the walk starts at its parent. A value of ``AICTL_AGENT`` that is
    not a valid holder name is returned as is, for the caller's validation to name it.
    """
    named = environ.get(AGENT_ENV, "").strip()
    if named:
        return named
    current = pid
    for _ in range(MAX_ANCESTORS):
        stat = read_stat(current)
        parent = parent_pid(stat) if stat else None
        if parent is None or parent <= 1:
            break
        parent_stat = read_stat(parent)
        if parent_stat is not None and command_name(parent_stat) == CLAUDE_PROCESS:
            return f"claude-{parent}"
        current = parent
    return f"agent-{session_id}"


@dataclass(frozen=True, slots=True)
class Lease:
    """A live lease as the hook sees it: the task, its globs, holder and epoch."""

    task_id: int
    title: str
    paths: tuple[str, ...]
    holder: str
    epoch: int


@dataclass(frozen=True, slots=True)
class WriteVerdict:
    """The hook's answer for one tool call: ``denial`` is None when the write may land;
    ``task`` is the lease it falls under (for the decision record), when there is one."""

    denial: str | None
    task: Lease | None
    rule: str = ""


def landing(raw: str, root: PurePath | str, resolve: Callable[[str], str] | None) -> str | None:
    """The repository-relative path a write of ``raw`` lands on (symbolic links followed by
    ``resolve``), or None outside the repository."""
    path = repo_relative(raw, root)
    if path is not None and resolve is not None:
        return repo_relative(resolve(posixpath.join(str(root), path)), resolve(str(root)))
    return path


def judge_write(
    agent: str,
    tool: str,
    tool_input: Mapping[str, Any],
    leases: Sequence[Lease],
    root: PurePath | str,
    resolve: Callable[[str], str] | None = None,
) -> WriteVerdict:
    """May ``agent`` make this call, given every live lease (its own and others')?

    A file write must land inside the globs of a task ``agent`` holds (rule
    ``aictl:task-paths``) and inside no glob of a task another agent holds (rule
    ``aictl:held-by-other``, which names that task and its holder). Tools that write no file
    get ``WriteVerdict(None, None)``: the policy alone decides them.
    """
    if tool not in WRITING_TOOLS and tool not in OUTSIDE_TOOLS:
        return WriteVerdict(None, None)
    mine = [lease for lease in leases if lease.holder == agent]
    theirs = [lease for lease in leases if lease.holder != agent]
    if tool in WRITING_TOOLS:
        for key in ("file_path", "notebook_path", "path"):
            raw = tool_input.get(key)
            if not isinstance(raw, str) or not raw:
                continue
            path = landing(raw, root, resolve)
            for other in theirs:
                if path is not None and any(covers(glob, path) for glob in other.paths):
                    return WriteVerdict(
                        f"{tool} {path} is locked by task {other.task_id} "
                        f"({other.title!r}), held by {other.holder}",
                        mine[0] if mine else None,
                        "held-by-other",
                    )
    if not mine:
        return WriteVerdict(
            f"{agent} holds no task, so it may write no file: claim one first "
            "(the aictl MCP tool `claim`)",
            None,
            "task-paths",
        )
    denials = []
    for lease in mine:
        denial = path_denial(tool, tool_input, lease.paths, root, lease.task_id, resolve=resolve)
        if denial is None:
            return WriteVerdict(None, lease)
        denials.append(denial)
    return WriteVerdict("; ".join(denials), mine[0], "task-paths")


def check_agent_name(value: str) -> str | None:
    """Why ``value`` is no valid agent name, or None."""
    if _NAME.fullmatch(value):
        return None
    return f"invalid {AGENT_ENV} {value!r}: 1-128 letters, digits or _ . : @ / -"
