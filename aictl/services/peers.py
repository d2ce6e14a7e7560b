"""Agents as peers: what the MCP server, the hooks and ``aictl prime`` do, without MCP.

``PeerSession`` is one agent's session (one MCP connection): it claims through the same
``TaskService`` as the CLI (policy, decision records, audit, fencing), keeps the lease tokens
it was granted (the agent names tasks by id and never sees a secret), and heartbeats them
while the session lives (``heartbeat``, called by the server's timer). When the session ends or
dies, nobody heartbeats: the leases expire and the tasks return to the queue as usual.

``pre_tool_use`` is the ``PreToolUse`` hook's decision: a file write must land inside a task
the agent holds and outside every task another agent holds; then the policy's ``tool`` rules
decide (for ``Bash`` they alone decide). Each decision is a Policy Decision Record.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, NamedTuple

from aictl.clock import Clock
from aictl.domain.peers import Lease, agent_name, check_agent_name, judge_write
from aictl.domain.tasks import LeaseToken, Task
from aictl.errors import InvalidInput, LeaseLost
from aictl.services.tasks import TaskService
from aictl.store.db import connect
from aictl.workspace import Workspace

DEFAULT_SESSION_TTL = "2m"
"""A session's lease length when neither ``--ttl`` nor the policy's ``lease_ttl`` says:
short, because the server renews it while the session lives (every third of it)."""
READY_SHOWN = 20


def current_agent(environ: Mapping[str, str] | None = None) -> str:
    """This process's agent name (``aictl.domain.peers.agent_name``), validated."""
    from aictl.services.actors import read_stat

    name = agent_name(
        os.environ if environ is None else environ, os.getpid(), read_stat, os.getsid(0)
    )
    problem = check_agent_name(name)
    if problem:
        raise InvalidInput(problem, hint="set AICTL_AGENT to a name such as agent-1")
    return name


def task_brief(task: Task) -> dict[str, Any]:
    """The fields an agent needs, in few tokens (``show`` adds the rest)."""
    brief: dict[str, Any] = {"id": task.id, "title": task.title, "status": str(task.status)}
    if task.paths:
        brief["paths"] = task.paths
    if task.priority:
        brief["priority"] = task.priority
    if task.depends_on:
        brief["depends_on"] = task.depends_on
    if task.lease_holder and task.status in ("claimed", "running"):
        brief["holder"] = task.lease_holder
    return brief


class PeerSession:
    """One agent's session; safe to call from several threads (one lock, one connection)."""

    def __init__(
        self,
        workspace: Workspace,
        agent: str,
        *,
        ttl: str | None = None,
        service: TaskService | None = None,
    ) -> None:
        self.agent = agent
        self.service = service or TaskService(
            workspace, db=connect(workspace.database, handoff=True)
        )
        self.ttl = ttl
        self.leases: dict[int, LeaseToken] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self.service.close()

    def lease_seconds(self) -> float:
        """The lease length claims use: ``--ttl``, else the policy's, else 2 minutes."""
        from aictl.domain.durations import parse_duration

        if self.ttl:
            return parse_duration(self.ttl, field="--ttl").total_seconds()
        lease = self.service.enforcer.policy(self.agent).duration("lease_ttl")
        return (lease or parse_duration(DEFAULT_SESSION_TTL, field="ttl")).total_seconds()

    # ------------------------------------------------------------ the tools

    def ready(self) -> dict[str, Any]:
        with self._lock:
            tasks = self.service.list_tasks(ready=True)
            held = [self.service.get(task_id) for task_id in self.leases]
        out: dict[str, Any] = {"ready": [task_brief(task) for task in tasks[:READY_SHOWN]]}
        if len(tasks) > READY_SHOWN:
            out["more"] = len(tasks) - READY_SHOWN
        out["held"] = [task_brief(task) for task in held]
        return out

    def claim(self, task_id: int | None = None) -> dict[str, Any]:
        """Claim (and start) the next ready task or ``task_id``; the lease is this session's."""
        with self._lock:
            ttl = f"{self.lease_seconds()}s"
            claim = self.service.claim(self.agent, ttl=ttl, task_id=task_id)
            self.leases[claim.task.id] = claim.token
            task = self.service.start(claim.token)
        brief = task_brief(task)
        if task.description:
            brief["description"] = task.description
        brief["note"] = "write only inside paths; finish with complete, fail or release"
        return brief

    def complete(
        self, task_id: int, result: str | None = None, evidence: Any = None
    ) -> dict[str, Any]:
        with self._lock:
            task = self.service.complete(self._token(task_id), result=result, evidence=evidence)
            self.leases.pop(task_id, None)
        return task_brief(task)

    def fail(self, task_id: int, reason: str, retry: bool = True) -> dict[str, Any]:
        with self._lock:
            task = self.service.fail(self._token(task_id), reason=reason, retry=retry)
            self.leases.pop(task_id, None)
        return task_brief(task)

    def release(self, task_id: int) -> dict[str, Any]:
        with self._lock:
            task = self.service.release(self._token(task_id))
            self.leases.pop(task_id, None)
        return task_brief(task)

    def create(
        self,
        title: str,
        paths: Sequence[str] = (),
        depends_on: Sequence[int] = (),
        priority: int = 0,
        description: str = "",
    ) -> dict[str, Any]:
        with self._lock:
            task = self.service.create(
                title,
                paths=list(paths),
                depends_on=list(depends_on),
                priority=priority,
                description=description,
            )
        return task_brief(task)

    def check_paths(self, paths: Sequence[str]) -> dict[str, Any]:
        """Which held locks of *other* holders the globs meet (empty: free to claim)."""
        with self._lock:
            conflicts = self.service.check_locks(paths)
        return {
            "conflicts": [
                {"glob": c.glob, "task_id": c.task_id, "held": c.held, "holder": c.holder}
                for c in conflicts
                if c.holder != self.agent
            ]
        }

    def show(self, task_id: int) -> dict[str, Any]:
        with self._lock:
            task = self.service.get(task_id)
        shown = task_brief(task)
        for name in ("description", "result", "failure_reason", "blocked_reason"):
            if value := getattr(task, name):
                shown[name] = value
        shown["attempts"] = task.attempts
        return shown

    # ------------------------------------------------------------ liveness

    def heartbeat(self) -> list[int]:
        """Renew every lease of this session; forget (and return) the ones that were lost."""
        lost = []
        with self._lock:
            for task_id, token in list(self.leases.items()):
                try:
                    self.service.heartbeat(token)
                except LeaseLost:
                    lost.append(task_id)
                    del self.leases[task_id]
        return lost

    def _token(self, task_id: int) -> LeaseToken:
        token = self.leases.get(task_id)
        if token is None:
            raise LeaseLost(
                f"{self.agent} holds no lease on task {task_id} in this session",
                hint="claim it first; a lease lives as long as the session that claimed it",
            )
        return token


# ------------------------------------------------------------------ the hook


class HookAnswer(NamedTuple):
    """``deny`` with a reason, or ``allow`` (None when the hook has no say: other tools)."""

    decision: str | None
    reason: str = ""


def pre_tool_use(
    workspace: Workspace, agent: str, event: Mapping[str, Any], clock: Clock | None = None
) -> HookAnswer:
    """Decide one tool call of a Claude Code session and record the decision (one short
    write transaction). Tools that write no file and are not ``Bash`` get ``HookAnswer(None)``
    without touching the database."""
    tool = str(event.get("tool_name") or "")
    tool_input = event.get("tool_input") or {}
    if not isinstance(tool_input, dict):
        tool_input = {}
    from aictl.domain.toolcalls import OUTSIDE_TOOLS, WRITING_TOOLS

    if tool not in WRITING_TOOLS and tool not in OUTSIDE_TOOLS and tool != "Bash":
        return HookAnswer(None)
    service = TaskService(workspace, clock=clock)
    try:
        store = service.store
        leases = [Lease(i, title, tuple(p), h, e) for i, title, p, h, e in store.live_leases()]
        verdict = judge_write(
            agent, tool, tool_input, leases, workspace.root, resolve=os.path.realpath
        )
        task = service.get(verdict.task.task_id) if verdict.task else None
        ruling = service.enforcer.ruling(
            "tool", subject=agent, task=task, ai=agent, tool=tool, tool_input=tool_input
        )
        if verdict.denial is not None:
            ruling = ruling.denied_by_aictl(verdict.rule, verdict.denial)
        with service.db.transaction():
            store.decisions.enforce(
                ruling,
                at=store.clock.now(),
                task_id=task.id if task else None,
                lease_epoch=verdict.task.epoch if verdict.task else None,
            )
    finally:
        service.close()
    if ruling.effect == "allow":
        return HookAnswer("allow")
    return HookAnswer("deny", f"aictl denied this {tool} call: {ruling.reason}")


# ------------------------------------------------------------------ prime

PRIME = """\
You are agent {agent}, working with other agents in {root}, coordinated by aictl.
Work is a queue of tasks; each task locks the paths (globs) it will change.
Rules:
- Claim a task before you change files: MCP tool `claim` (the next ready task, or one by id).
- Write only inside the paths of a task you hold. A hook denies any other write, and any write
  into paths another agent holds; the denial names the task and its holder.
- Finish every task you claimed: `complete` (result, evidence), `fail` (reason) or `release`.
- Your leases live as long as this session; no heartbeat is needed.
- Other tools: `ready` (what you can claim), `show`, `create`, `check_paths`.
"""


def prime(workspace: Workspace, agent: str, clock: Clock | None = None) -> str:
    """The ``SessionStart`` text: who the agent is, what it holds, what is ready, the loop.
    Bounded: at most ``READY_SHOWN`` ready tasks are listed, titles cut at 80 characters."""
    service = TaskService(workspace, clock=clock)
    try:
        leases = [lease for lease in service.store.live_leases() if lease[3] == agent]
        ready = service.list_tasks(ready=True)
    finally:
        service.close()
    lines = [PRIME.format(agent=agent, root=workspace.root)]
    if leases:
        lines.append("You hold (from an earlier session; claim again if it expires):")
        lines += [
            f"- task {i}: {title[:80]} (paths: {', '.join(p)})" for i, title, p, _, _ in leases
        ]
    else:
        lines.append("You hold no task.")
    if ready:
        lines.append(f"Ready to claim ({len(ready)}):")
        for task in ready[:READY_SHOWN]:
            paths = ", ".join(task.paths) or "no paths"
            lines.append(f"- task {task.id}: {task.title[:80]} ({paths})")
        if len(ready) > READY_SHOWN:
            lines.append(f"- ... and {len(ready) - READY_SHOWN} more (MCP tool `ready`)")
    else:
        lines.append("Nothing is ready to claim now.")
    return "\n".join(lines) + "\n"


def lease_interval(seconds: float) -> timedelta:
    """How often a session renews its leases: a third of their length."""
    return timedelta(seconds=max(seconds / 3, 0.05))
