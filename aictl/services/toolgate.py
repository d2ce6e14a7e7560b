"""The tool gate: aictl's decision on each tool call an agent makes while it runs.

A connector puts every call that needs permission to the gate before running it (for Claude
Code, over its stdio permission protocol). The gate checks the task's paths first (a write
outside the task's globs is denied whatever the policy says: the globs are the task's locks),
then asks the policy (``tool`` action), and writes a Policy Decision Record for each call,
fenced with the run's lease epoch. A denied call never runs; the agent is told why.

Fencing reaches the tool call: before deciding, the gate checks that the run's lease is still
the current epoch of a live lease. A lease that was cancelled, expired or claimed again denies
the call (rule ``aictl:lease``) and calls ``on_lease_lost``, with which the executor stops the
agent at once rather than at its next heartbeat. Under the policy's ``reads: repository`` (the
default) a read of a file outside the repository is denied too (rule ``aictl:reads``).

The gate is called from the connector's reader thread, so it opens its own connection (handed
off: opened there, closed by the executor's thread once the run is over), and decides through
a sibling of the run's enforcer: under the daemon, that is the one that keeps the last valid
policy while the files are invalid, so the tool calls of a run are decided by the policy the
run was claimed under, not refused wholesale by a half-saved edit.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aictl.domain.tasks import LeaseToken, Task
from aictl.domain.toolcalls import path_denial, read_denial
from aictl.services.enforcement import Enforcer
from aictl.services.tasks import TaskService
from aictl.store.db import connect
from aictl.workspace import Workspace
from connectors import ToolCall, Verdict

#: The rule id recorded when the task's paths, not a policy rule, deny a call.
PATHS_RULE = "aictl:task-paths"
#: The rule id recorded when the run's lease is no longer held.
LEASE_RULE = "aictl:lease"
DENIALS_KEPT = 50


class ToolGate:
    """Decides the tool calls of one run of ``task`` by ``ai``; counts and keeps its denials."""

    def __init__(
        self,
        workspace: Workspace,
        task: Task,
        ai: str,
        token: LeaseToken,
        progress: Callable[[str], None],
        enforcer: Enforcer,
        on_lease_lost: Callable[[], None] = lambda: None,
        *,
        root: Path | None = None,
    ) -> None:
        """``root`` anchors the paths of Write and Edit calls: the agent's working directory
        (its worktree), the repository's root by default."""
        self.workspace = workspace
        self.root = root or workspace.root
        self.on_lease_lost = on_lease_lost
        self.enforcer = enforcer
        self.task = task
        self.ai = ai
        self.token = token
        self.progress = progress
        self.allowed = 0
        self.denied = 0
        self.denials: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._service: TaskService | None = None

    def __call__(self, call: ToolCall) -> Verdict:
        with self._lock:
            service = self._open()
            ruling = service.enforcer.ruling(
                "tool",
                subject=self.ai,
                task=self.task,
                ai=self.ai,
                tool=call.name,
                tool_input=call.input,
            )
            lost = service.store.lease_loss(self.token)
            denial = path_denial(
                call.name,
                call.input,
                self.task.paths,
                self.root,
                self.task.id,
                resolve=os.path.realpath,
            )
            reading = None
            if service.enforcer.policy(self.ai).setting("reads") != "anywhere":
                reading = read_denial(call.name, call.input, self.root, resolve=os.path.realpath)
            if lost is not None:
                ruling = ruling.denied_by_aictl("lease", str(lost))
            elif denial is not None:
                ruling = ruling.denied_by_aictl("task-paths", denial)
            elif reading is not None:
                ruling = ruling.denied_by_aictl("reads", reading)
            store = service.store
            with service.db.transaction():
                record = store.decisions.enforce(
                    ruling, at=store.clock.now(), task_id=self.task.id, lease_epoch=self.token.epoch
                )
            if ruling.effect == "allow":
                self.allowed += 1
                return Verdict(True)
            if lost is not None:
                self.on_lease_lost()
            why = ruling.reason
            if ruling.effect == "require_approval":
                why = f"needs a person's approval, which cannot be given mid-run ({why})"
            self.progress(f"  denied {call.name}: {why}")
            self.denied += 1
            if len(self.denials) < DENIALS_KEPT:
                self.denials.append({"tool": call.name, "reason": why, "decision": record.id})
            return Verdict.deny(f"aictl denied this {call.name} call: {why}")

    def summary(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "denied": self.denied,
            "denials": self.denials,
        }

    def _open(self) -> TaskService:
        if self._service is None:
            database = connect(self.workspace.database, handoff=True)
            self._service = TaskService(self.workspace, db=database)
            self._service.enforcer = self.enforcer.sibling(self._service.store)
        return self._service

    def close(self) -> None:
        with self._lock:
            if self._service is not None:
                self._service.close()
                self._service = None
