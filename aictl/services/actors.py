"""A person's decisions stay a person's: approvals, rejections and overrides refuse agents.

``agent_sign`` reads what ``aictl.domain.actors.find_agent`` decides on (our environment, the
process tree under ``/proc``, the registered AIs); ``refuse_agents`` turns a sign into a denial
recorded as a Policy Decision Record (rule ``aictl:person-only``) in a transaction of its own,
raised as ``PolicyDenied`` (exit 3) before anything else is read or written.

Limit: a process that double-forks away from its ancestors and drops the marker is not
recognised; the OS sandbox, which keeps ``.ai/`` read-only for the agent, is the backstop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aictl.domain.actors import PERSON_ONLY_RULE, AgentSign, find_agent
from aictl.errors import AictlError, PolicyDenied
from aictl.store.decisions import Ruling

if TYPE_CHECKING:
    from aictl.domain.tasks import Task
    from aictl.services.tasks import TaskService

PROC = Path("/proc")
PERSON_HINT = (
    "approvals, rejections and policy overrides are a person's: run the command from your own "
    "shell, outside any agent run, as a person (AICTL_ACTOR unset or user:<name>)"
)


def read_stat(pid: int) -> str | None:
    try:
        return (PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _read_environ(pid: int) -> bytes | None:
    try:
        return (PROC / str(pid) / "environ").read_bytes()
    except OSError:  # another user's process, or gone: skipped
        return None


def agent_sign(service: TaskService, environ: Mapping[str, str] | None = None) -> AgentSign | None:
    """Why the current process acts for an agent, or None when it acts for a person."""
    from aictl.store.ais import AIStore  # here: the hook imports this module for read_stat

    return find_agent(
        actor=service.store.actor,
        registered=AIStore(service.db, service.store.clock).ids(),
        environ=os.environ if environ is None else environ,
        pid=os.getpid(),
        read_stat=read_stat,
        read_environ=_read_environ,
    )


def person_only(ruling: Ruling, sign: AgentSign) -> Ruling:
    """``ruling`` turned into a denial by aictl's own rule, the evidence in its resource."""
    rule = {"id": PERSON_ONLY_RULE, "effect": "deny", "reason": sign.reason}
    fields = dict(ruling.fields)
    fields["rules"] = [rule, *fields.get("rules", [])]
    fields["resource"] = {**fields.get("resource", {}), "agent": sign.to_dict()}
    return Ruling("deny", f"{PERSON_ONLY_RULE}: {sign.reason}", fields)


def refuse_agents(
    service: TaskService,
    action: str,
    what: str,
    *,
    task: Task | None = None,
    resource: Mapping[str, Any] | None = None,
) -> None:
    """Raise ``PolicyDenied`` when the request comes from an agent, after recording the
    denial in its own transaction (nothing else changes). ``what`` names the request in the
    message ("the approval of task 3"). Returns quietly for a person.

    The policy is evaluated for the record's layers and hash; when it cannot be loaded the
    denial is recorded all the same, without them (an invalid policy must not let an agent
    through, nor hide its attempt).
    """
    sign = agent_sign(service)
    if sign is None:
        return
    actor = service.store.actor
    try:
        ruling = service.enforcer.ruling(action, subject=actor, task=task, resource=resource)
    except AictlError:
        ruling = Ruling(
            "deny",
            "",
            {
                "action": action,
                "subject": actor,
                "rules": [],
                "layers": {},
                "policy_hash": "",
                "request": {"action": action, "task": {"id": task.id} if task else {}},
                "resource": dict(resource or {"task": task.id if task else None}),
            },
        )
    denial = person_only(ruling, sign)
    store = service.store
    with service.db.transaction():
        store.decisions.enforce(denial, at=store.clock.now(), task_id=task.id if task else None)
    raise PolicyDenied(f"{what} by {actor} is refused: {denial.reason}", hint=PERSON_HINT)
