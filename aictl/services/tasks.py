"""The task service: validates a request, then makes one store call.

Everything the CLI offers for tasks and locks is callable from here without the CLI.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

from aictl.clock import Clock, SystemClock
from aictl.domain import globs
from aictl.domain.dag import topological_layers
from aictl.domain.durations import parse_duration
from aictl.domain.tasks import (
    LeaseToken,
    Status,
    Task,
    check_json_text,
    check_text,
    parse_label,
)
from aictl.errors import InvalidInput
from aictl.services.enforcement import Enforcer
from aictl.store.db import Database, connect
from aictl.store.decisions import Ruling
from aictl.store.tasks import Claim, Expiry, HeldLock, NewTask, TaskStore
from aictl.workspace import Workspace

DEFAULT_TTL = timedelta(minutes=10)
PRIORITY_RANGE = (-1_000_000, 1_000_000)
"""Priorities allowed: wide enough for any scheme, and far inside SQLite's 64-bit integers."""
MAX_ATTEMPTS = 1_000_000
_WILDCARD = re.compile(r"[*?\[]")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}")


class Dependencies(NamedTuple):
    """A task's place in the graph: what it waits on (up) and what waits on it (down)."""

    task: Task
    up: list[tuple[int, int]]
    down: list[tuple[int, int]]
    tasks: dict[int, Task]


class LockConflict(NamedTuple):
    glob: str
    task_id: int
    held: str
    holder: str
    witness: str | None


def check_name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise InvalidInput(
            f"invalid {what} {value!r}",
            hint=f"a {what} is 1-128 letters, digits or _ . : @ / -, first a letter or digit",
        )
    return value


def _skill_names(items: Sequence[str]) -> list[str]:
    """Validated skill names, sorted (the skills machinery is imported only when given some)."""
    if not items:
        return []
    from aictl.domain.skills import check_skill_name

    return sorted({check_skill_name(check_text(item, "skill")) for item in items})


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    return dict(parse_label(item) for item in items)


class Hold(NamedTuple):
    """A rule of aictl's own that holds a new task for approval: its id and reason."""

    rule: str
    reason: str


class TaskService:
    def __init__(
        self, workspace: Workspace, *, clock: Clock | None = None, db: Database | None = None
    ) -> None:
        self.workspace = workspace
        self.db = db or connect(workspace.database)
        self.store = TaskStore(self.db, clock or SystemClock(), actor=default_actor())
        self.enforcer = Enforcer(workspace, self.store)

    def close(self) -> None:
        self.db.close()

    # creating and reading

    def create(self, title: str, *, hold: Hold | None = None, **fields: Any) -> Task:
        """Validate every field (the keywords of ``new_task``), ask the policy, then insert
        with the decision recorded; nothing is written if any field is wrong, and only the
        decision record if the policy denies it (``PolicyDenied``, exit 3). With ``hold``, a
        decision the policy allows is raised to ``require_approval`` by that rule (a workflow
        step's approval gate)."""
        if fields.get("max_attempts") is None:
            fields["max_attempts"] = self.enforcer.policy(None).setting("max_attempts", 3)
        spec = self.new_task(title, **fields)
        ruling = self.enforcer.ruling("create", subject=self.store.actor, task=self.draft(spec))
        if hold is not None and ruling.effect == "allow":
            rule = {"id": hold.rule, "effect": "require_approval", "reason": hold.reason}
            ruling = ruling._replace(
                effect="require_approval",
                reason=f"{hold.rule}: {hold.reason}",
                fields={**ruling.fields, "rules": [*ruling.fields.get("rules", []), rule]},
            )
        return self.store.create(spec, ruling)

    def draft(self, spec: NewTask) -> Task:
        """The task ``spec`` would create, as the policy judges it before it exists (id 0)."""
        now = self.store.clock.now()
        return Task(
            id=0,
            title=spec.title,
            description=spec.description,
            type=spec.type,
            priority=spec.priority,
            labels=spec.labels,
            requires=spec.requires,
            skills=spec.skills,
            paths=spec.paths,
            depends_on=spec.depends_on,
            max_attempts=spec.max_attempts,
            created_at=now,
            updated_at=now,
        )

    def new_task(
        self,
        title: str,
        *,
        description: str = "",
        type: str = "task",
        priority: int = 0,
        depends_on: Sequence[int] = (),
        paths: Sequence[str] = (),
        labels: Sequence[str] = (),
        requires: Sequence[str] = (),
        max_attempts: int = 3,
        skills: Sequence[str] = (),
    ) -> NewTask:
        if not check_text(title, "title").strip():
            raise InvalidInput("a task needs a title", hint='aictl task create "Fix the login bug"')
        check_text(description, "description")
        low, high = PRIORITY_RANGE
        if not low <= priority <= high:
            raise InvalidInput(
                f"invalid --priority {priority}: must be between {low:,} and {high:,}",
                hint="higher runs first; 0 is the default",
            )
        if not 1 <= max_attempts <= MAX_ATTEMPTS:
            raise InvalidInput(
                f"invalid --max-attempts {max_attempts}: must be between 1 and {MAX_ATTEMPTS:,}"
            )
        return NewTask(
            title=title.strip(),
            description=description,
            type=check_name(type, "task type"),
            priority=priority,
            labels=parse_labels(labels),
            requires=sorted({check_name(item, "capability") for item in requires}),
            paths=self.normalise_globs(paths),
            depends_on=list(depends_on),
            max_attempts=max_attempts,
            skills=_skill_names(skills),
        )

    def normalise_globs(self, paths: Sequence[str]) -> list[str]:
        """Normalised, confined globs, without duplicates. A literal path naming an existing
        directory becomes ``dir/**``: locking a directory locks its contents, and the stored
        lock then says so."""
        normalised = []
        for path in paths:
            glob = globs.normalize_glob(check_text(path, "path"), self.workspace.root)
            glob = _through_links(glob, self.workspace.root)
            if not _WILDCARD.search(glob) and (self.workspace.root / glob).is_dir():
                glob += "/**"
            normalised.append(glob)
        return list(dict.fromkeys(normalised))

    def get(self, task_id: int) -> Task:
        return self.store.get(task_id)

    def list_tasks(
        self, *, statuses: Sequence[str] = (), ready: bool = False, labels: Sequence[str] = ()
    ) -> list[Task]:
        return self.store.list_tasks(
            statuses=[parse_status(status) for status in statuses],
            ready=ready,
            labels=parse_labels(labels),
        )

    def link(self, task_id: int, depends_on: Sequence[int]) -> Task:
        return self.store.link(task_id, depends_on)

    def unlink(self, task_id: int, depends_on: Sequence[int]) -> Task:
        return self.store.unlink(task_id, depends_on)

    def dependencies(self, task_id: int) -> Dependencies:
        up = self.store.edges(task_id, direction="up")
        down = self.store.edges(task_id, direction="down")
        ids = {task_id} | {node for edge in up + down for node in edge}
        tasks = {task.id: task for task in self.store.list_tasks() if task.id in ids}
        return Dependencies(tasks[task_id], up, down, tasks)

    def graph(self) -> tuple[list[Task], list[tuple[int, int]], list[list[int]]]:
        """All tasks, all edges, and the tasks in dependency order (layers)."""
        tasks = self.store.list_tasks()
        edges = self.store.edges()
        return tasks, edges, topological_layers([task.id for task in tasks], edges)

    # the lease lifecycle

    def claim(self, holder: str, *, ttl: str | None = None, task_id: int | None = None) -> Claim:
        holder = check_name(holder, "holder")
        if ttl:
            lease = parse_duration(ttl, field="--ttl")
        else:
            lease = self.enforcer.policy(holder).duration("lease_ttl") or DEFAULT_TTL

        def decide(task: Task) -> Ruling:
            return self.enforcer.ruling("claim", subject=holder, task=task, ai=holder)

        return self.store.claim(holder, lease, task_id, decide=decide)

    def approve(self, task_id: int) -> Task:
        """Approve a task that policy sent to await approval (itself a policy decision).
        A person's decision: from inside an agent run, or by an actor that is an AI, it is
        refused and recorded (``PolicyDenied``) and the task stays as it is."""
        from aictl.services.actors import refuse_agents  # approvals are rare: not on every path

        task = self.store.get(task_id)
        refuse_agents(self, "approve", f"the approval of task {task_id}", task=task)
        ruling = self.enforcer.ruling("approve", subject=self.store.actor, task=task)
        return self.store.approve(task_id, ruling, self.store.actor)

    def reject(self, task_id: int, *, reason: str) -> Task:
        """Reject a task awaiting approval: it is cancelled (itself a policy decision). A
        person's decision, refused to agents as ``approve`` is."""
        if not check_text(reason, "reason").strip():
            raise InvalidInput("a rejection needs a --reason")
        from aictl.services.actors import refuse_agents

        task = self.store.get(task_id)
        resource = {"task": task_id, "paths": task.paths, "verdict": "reject"}
        refuse_agents(
            self, "approve", f"the rejection of task {task_id}", task=task, resource=resource
        )
        ruling = self.enforcer.ruling(
            "approve", subject=self.store.actor, task=task, resource=resource
        )
        return self.store.reject(task_id, ruling, self.store.actor, reason)

    def heartbeat(self, token: LeaseToken, *, ttl: str | None = None) -> Task:
        return self.store.heartbeat(token, parse_duration(ttl, field="--ttl") if ttl else None)

    def start(self, token: LeaseToken) -> Task:
        return self.store.start(token)

    def complete(
        self, token: LeaseToken, *, result: str | None = None, evidence: Any = None
    ) -> Task:
        if evidence is not None and not isinstance(evidence, dict):
            raise InvalidInput("evidence must be a JSON object")
        if result is not None:
            check_text(result, "result")
        check_json_text(evidence, "evidence")
        return self.store.complete(token, result, evidence)

    def fail(
        self,
        token: LeaseToken,
        *,
        reason: str,
        retry: bool = True,
        backoff: timedelta | None = None,
    ) -> Task:
        check_text(reason, "reason")
        return self.store.fail(token, reason or "failed", retry=retry, backoff=backoff)

    def release(self, token: LeaseToken) -> Task:
        return self.store.release(token)

    def cancel(self, task_id: int, *, reason: str | None = None) -> Task:
        if reason is not None:
            check_text(reason, "reason")
        return self.store.cancel(task_id, reason)

    def retry(self, task_id: int) -> Task:
        return self.store.retry(task_id)

    def sweep(self) -> list[Expiry]:
        return self.store.sweep()

    # locks

    def locks(self) -> list[HeldLock]:
        return self.store.held_locks()

    def check_locks(self, paths: Sequence[str]) -> list[LockConflict]:
        """Which held locks the globs would conflict with, each with a path both cover."""
        wanted = self.normalise_globs(paths)
        held = self.store.held_locks()
        by_key = {(lock.task_id, lock.glob): lock for lock in held}
        conflicts = globs.find_conflicts(
            wanted, [((lock.task_id, lock.glob), lock.glob) for lock in held], explain=True
        )
        result = []
        for conflict in conflicts:
            lock = by_key[conflict.holder]  # type: ignore[index]
            result.append(
                LockConflict(
                    conflict.wanted, lock.task_id, lock.glob, lock.holder, conflict.witness
                )
            )
        return result


def _through_links(glob: str, root: Path) -> str:
    """``glob`` with its literal leading folders resolved through symbolic links, so that a
    lock names the paths it really covers: ``lnk/**`` with ``lnk -> real`` becomes
    ``real/**`` and conflicts with ``real/**``. A glob whose literal part leads outside the
    repository (``etc-link -> /etc``) is refused."""
    segments = glob.split("/")
    literal = []
    for segment in segments:
        if _WILDCARD.search(segment):
            break
        literal.append(segment)
    if not literal:
        return glob
    real_root = Path(os.path.realpath(root))
    resolved = Path(os.path.realpath(root.joinpath(*literal)))
    if not resolved.is_relative_to(real_root):
        raise globs.GlobError(
            glob,
            f"{'/'.join(literal)} leads outside the repository through a symbolic link "
            f"(to {resolved})",
            hint="lock paths inside the repository",
        )
    inside = resolved.relative_to(real_root).as_posix()
    if inside == "/".join(literal):
        return glob
    if inside == ".":
        rest = segments[len(literal) :]
        return "/".join(rest) if rest else "**"
    return "/".join([inside, *segments[len(literal) :]])


def default_actor() -> str:
    """Who the audit log names for operator actions: ``AICTL_ACTOR``, else ``user:<login>``."""
    import getpass
    import os

    return check_text(os.environ.get("AICTL_ACTOR") or f"user:{getpass.getuser()}", "AICTL_ACTOR")


def parse_status(text: str) -> Status:
    try:
        return Status(text.lower())
    except ValueError:
        raise InvalidInput(
            f"unknown status {text!r}",
            hint="one of: " + ", ".join(status.value for status in Status),
        ) from None
