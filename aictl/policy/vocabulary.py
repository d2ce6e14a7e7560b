"""The policy's words, as tables: effects, actions, permission modes, and the request schema.

Every name a policy file may use is looked up here, so an unknown name is reported with the list
of valid ones (:func:`choose`), and adding a word is one line in one table. This module imports
nothing heavy: the CLI and the task commands import it on their fast paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from aictl.domain.tasks import Task

SUPPORTED_VERSIONS = (1,)

EFFECTS: Mapping[str, str] = {
    "allow": "permits the action",
    "deny": "refuses the action (exit code 3); wins over every other effect",
    "require_approval": "holds the action until a person approves it; wins over allow",
    "warn": "permits the action and reports the rule; never changes the outcome",
}

PRECEDENCE: Mapping[str, int] = {"allow": 1, "require_approval": 2, "deny": 3}
"""Deciding effects from weakest to strongest; ``warn`` decides nothing and has no rank."""

DEFAULT_EFFECTS = ("allow", "deny", "require_approval")
"""The effects a file may state as its ``default`` (``warn`` decides nothing, so it cannot)."""

ACTIONS: Mapping[str, str] = {
    "create": "a task is created",
    "claim": "an AI claims a task (its lease and path locks)",
    "execute": "an AI starts working on a claimed task",
    "tool": "an AI calls one of its tools while it works (name and input given)",
    "approve": "a person approves or rejects a held action",
    "override": "a person sets or removes a policy override",
}

NOTIFICATION_EVENTS: Mapping[str, str] = {
    "task.done": "a task finished and its evidence was accepted",
    "task.failed": "a task failed for good (no retry left, or not retryable)",
    "task.blocked": "a task is blocked (a dependency failed or was cancelled)",
    "approval.needed": "policy sent a task to wait for a person's approval",
    "ai.quarantined": "an AI was quarantined after consecutive failed runs",
    "ai.offline": "an AI was taken offline: its connector cannot start (e.g. a missing binary)",
    "budget.daily_reached": "today's spend reached the daily budget: no run starts until tomorrow",
}
"""What the daemon notifies about (``notifications:`` in a policy file)."""

PERMISSION_MODES: Mapping[str, str] = {
    "default": "the agent asks before every sensitive tool call",
    "acceptEdits": "file edits are accepted without asking",
    "plan": "the agent plans and may not change anything",
    "dontAsk": "tool calls not pre-approved are refused instead of asked",
    "bypassPermissions": "every tool call is accepted (use only in a sandbox)",
}

ISOLATION: Mapping[str, str] = {
    "worktree": "each attempt runs in its own git worktree; aictl commits and integrates it",
    "shared": "agents work in the one working tree, beside each other",
}
INTEGRATE: Mapping[str, str] = {
    "merge": "a merge commit of the task's branch into the target branch",
    "rebase": "the task's commit replayed on the target branch: linear history",
    "branch": "the branch is left for review; `aictl task integrate` merges it later",
}
OUTSIDE_CHANGES: Mapping[str, str] = {
    "fail": "a run that changed files outside its task's paths fails the task (not retried)",
    "warn": "such a run completes; the progress output and the evidence name the files",
}
"""What ``settings.outside_changes`` may say; the first is the default."""

# ----------------------------------------------------------------------------- the request

TASK_FIELDS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(Task))
AI_FIELDS: tuple[str, ...] = ("id", "labels", "capabilities", "connector", "model")
TOOL_FIELDS: tuple[str, ...] = ("name", "input")

VARIABLES: Mapping[str, tuple[str, ...] | None] = {
    "action": None,
    "task": TASK_FIELDS,
    "ai": AI_FIELDS,
    "tool": TOOL_FIELDS,
    "paths": None,
}
"""The request's top-level variables and, for the records among them, their fields. A
``None`` entry is a plain value (a string or a list) with no fields to select."""

OPEN_MAPS = frozenset(
    {("task", "labels"), ("task", "evidence"), ("ai", "labels"), ("tool", "input")}
)
"""Fields that are maps with free keys: any key may be selected below them."""

TOOL_PATH_KEYS = ("file_path", "notebook_path", "path")
"""Keys of a tool call's input that name a file it touches (Claude Code's Read, Edit, Write,
NotebookEdit, Glob and Grep use these); ``paths`` of a tool request are their values."""


def choose(kind: str, value: object, table: Mapping[str, object]) -> str:
    """``value`` if it names an entry of ``table``; else ``ValueError`` listing the valid names.

    ``kind`` is the singular noun used in the message ("effect", "action").
    """
    if isinstance(value, str) and value in table:
        return value
    from aictl.domain.suggest import unknown_name

    raise ValueError(unknown_name(kind, value, table))


def stronger(a: str, b: str) -> str:
    """The more restrictive of two deciding effects (deny > require_approval > allow)."""
    return a if PRECEDENCE[a] >= PRECEDENCE[b] else b


def opposed(a: str, b: str) -> bool:
    """Whether two effects decide differently (``warn`` opposes nothing)."""
    return a != b and a in PRECEDENCE and b in PRECEDENCE
