"""Task persistence: every task state change is one ``BEGIN IMMEDIATE`` transaction here.

Fencing: every write by a holder names the lease epoch it was granted and the secret it was
given, and succeeds only while that epoch is current, the secret's SHA-256 is the one stored
for it and the lease has not expired (``WHERE id = ? AND lease_epoch = ? AND
lease_secret_hash = ? AND lease_expires_at > ?``). Zero rows changed means the lease was lost;
``_lease_lost`` then reads the row to say why. Time is read from the injected clock *after* the
write lock is taken, so a claim can never carry a timestamp earlier than the commit it depends
on.

On PostgreSQL the claim of the next ready task (without a policy), start and complete run as
server-side functions instead (``migrations/pg/0012_hot_path.sql``, one round trip each): the
same fenced statements, locks and audit rows, with the clock read before the call (a claim is
stamped no earlier than its dependencies finished, by the function).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from aictl.clock import Clock
from aictl.domain import globs
from aictl.domain.dag import cycle_closed_by
from aictl.domain.tasks import (
    LEASED,
    UNSATISFIABLE,
    LeaseToken,
    Status,
    Task,
    current_holder,
    failure_event,
    format_time,
    hash_secret,
    lost_lease_hint,
    next_status,
    parse_time,
    sources,
)
from aictl.errors import (
    AictlError,
    ApprovalRequired,
    DependencyCycle,
    IllegalTransition,
    InvalidInput,
    LeaseLost,
    LockHeld,
    NothingReady,
    PolicyDenied,
    TaskHeld,
    TaskNotFound,
)
from aictl.store.audit import AuditLog, canonical
from aictl.store.db import Database, retried_on_conflict
from aictl.store.decisions import DecisionStore, Ruling

_TASK_FIELDS = (
    "id", "title", "description", "type", "priority", "status", "labels", "requires", "paths",
    "attempts", "max_attempts", "lease_holder", "lease_epoch", "lease_ttl_seconds",
    "lease_expires_at", "heartbeat_at", "created_at", "updated_at", "claimed_at", "started_at",
    "finished_at", "blocked_reason", "approval", "approval_by", "failure_reason", "result",
    "evidence", "not_before", "skills",
)  # fmt: skip


def _task_columns(row: str = "tasks") -> str:
    """The columns a task is read from, of the table or of ``row``, a row of it (the server's
    claim returns one as ``(task)``); the dependency list rides along (also in RETURNING):
    one query fewer per task write."""
    fields = _TASK_FIELDS if row == "tasks" else [f"{row}.{name}" for name in _TASK_FIELDS]
    deps = f"(SELECT json_group_array(depends_on) FROM task_deps WHERE task_id = {row}.id)"
    return f"{', '.join(fields)}, {deps} AS deps"


_TASK_COLUMNS = _task_columns()
_JSON_COLUMNS = ("labels", "requires", "paths", "evidence", "skills")
_TIME_COLUMNS = (
    "lease_expires_at",
    "heartbeat_at",
    "created_at",
    "updated_at",
    "claimed_at",
    "started_at",
    "finished_at",
    "not_before",
)

_INSERT_TASK = f"""
INSERT INTO tasks (title, description, type, priority, status, labels, requires, paths,
                   unmet_deps, max_attempts, blocked_reason, created_at, updated_at, skills)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
RETURNING {_TASK_COLUMNS}
"""
# INDEXED BY: on a fresh database the planner prefers tasks_status and sorts every queued row
# per claim (seen in EXPLAIN QUERY PLAN); pinning the partial index keeps a claim O(log n).
# A task in retry backoff (``not_before`` after now, the one parameter) is filtered per row
# while walking the index: such tasks are few, so the walk stays short.
READY_CANDIDATES = """
SELECT id, paths, priority FROM tasks INDEXED BY tasks_ready
WHERE status = 'queued' AND unmet_deps = 0 AND (not_before IS NULL OR not_before <= ?)
ORDER BY priority DESC, id
"""
# Pages of the ready queue by key (after the last row read), not by OFFSET: on PostgreSQL a
# claim beside this one (aictl_claim, for a task with no paths) can take a row before the
# next page is read, and an OFFSET would then jump over as many rows.
_READY_FIRST_PAGE = READY_CANDIDATES + "LIMIT ?"
_AFTER_ROW = "AND (priority < ? OR (priority = ? AND id > ?))\nORDER BY"
_READY_NEXT_PAGE = READY_CANDIDATES.replace("ORDER BY", _AFTER_ROW) + "LIMIT ?"
FIRST_READY_PAGE = 8
# PostgreSQL: the candidate's row, held before the policy decides on it and until the claim
# commits, so that no claim beside this one (aictl_claim, which skips held rows) takes it
# meanwhile; a walk skips a row another claim holds, a claim of one named task waits for it.
_HOLD_READY = """
SELECT 1 FROM tasks WHERE id = ? AND status = 'queued' AND unmet_deps = 0 FOR NO KEY UPDATE
"""
_BACKING_OFF = """
SELECT count(*), min(not_before) FROM tasks
WHERE status = 'queued' AND unmet_deps = 0 AND not_before > ?
"""
_CLAIM = f"""
UPDATE tasks
SET status = 'claimed', lease_holder = ?, lease_epoch = lease_epoch + 1, lease_secret_hash = ?,
    lease_ttl_seconds = ?, lease_expires_at = ?, heartbeat_at = ?, claimed_at = ?,
    started_at = NULL, not_before = NULL, attempts = attempts + 1, updated_at = ?
WHERE id = ? AND status = 'queued' AND unmet_deps = 0
RETURNING {_TASK_COLUMNS}
"""
_EXPIRED = """
SELECT id, attempts, max_attempts, lease_holder, lease_epoch FROM tasks
WHERE status IN ('claimed', 'running') AND lease_expires_at <= ?
"""
_ANY_EXPIRED = (
    "SELECT 1 FROM tasks WHERE status IN ('claimed', 'running') AND lease_expires_at <= ? LIMIT 1"
)
# The lease holder's hot path on PostgreSQL: server-side functions (migrations/pg/0012), each
# one statement and so one round trip and one transaction (``Database.call``).
# They return the task row as written (``aictl_claim`` as its ``task``), read as everywhere.
_SERVER_CLAIM = (
    f"SELECT outcome, locked, missing, {_task_columns('(task)')}"
    " FROM aictl_claim(?, ?, ?, ?, ?, ?, ?)"
)
_SERVER_START = f"SELECT {_TASK_COLUMNS} FROM aictl_start(?, ?, ?, ?, ?, ?, ?) AS tasks"
_SERVER_COMPLETE = f"SELECT {_TASK_COLUMNS} FROM aictl_complete(?, ?, ?, ?, ?, ?, ?, ?, ?) AS tasks"
_LEARN_OVERLAP = (
    "INSERT INTO glob_pairs (version, a, b, overlap) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_DEPENDENTS = """
SELECT t.id, t.status FROM task_deps d JOIN tasks t ON t.id = d.task_id WHERE d.depends_on = ?
"""
_ANCESTOR_EDGES = """
WITH RECURSIVE up(id) AS (
    SELECT ? UNION SELECT d.depends_on FROM task_deps d JOIN up ON d.task_id = up.id
)
SELECT d.task_id, d.depends_on FROM task_deps d JOIN up ON d.task_id = up.id
"""
_DESCENDANT_EDGES = """
WITH RECURSIVE down(id) AS (
    SELECT ? UNION SELECT d.task_id FROM task_deps d JOIN down ON d.depends_on = down.id
)
SELECT d.task_id, d.depends_on FROM task_deps d JOIN down ON d.depends_on = down.id
"""


@dataclass(frozen=True, slots=True)
class NewTask:
    """A validated request to create a task (globs already normalised, labels parsed)."""

    title: str
    description: str = ""
    type: str = "task"
    priority: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    requires: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    depends_on: list[int] = field(default_factory=list)
    max_attempts: int = 3
    skills: list[str] = field(default_factory=list)


class Claim(NamedTuple):
    task: Task
    token: LeaseToken


class HeldLock(NamedTuple):
    task_id: int
    glob: str
    holder: str
    lease_epoch: int
    acquired_at: datetime
    lease_expires_at: datetime


class Expiry(NamedTuple):
    """What the sweep did with one expired lease."""

    task_id: int
    holder: str
    epoch: int
    outcome: Status


def _qmarks(count: int) -> str:
    return ", ".join("?" * count)


class TaskStore:
    """The task tables behind a narrow interface (a PostgreSQL backend would implement the same)."""

    def __init__(self, db: Database, clock: Clock, *, actor: str = "user") -> None:
        self.db = db
        self.clock = clock
        self.actor = actor
        self.audit = AuditLog(db.connection)
        self.decisions = DecisionStore(db.connection)

    # ----------------------------------------------------------------- reading

    def get(self, task_id: int) -> Task:
        row = self.db.connection.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        if row is None:
            raise TaskNotFound(f"no task {task_id}", hint="`aictl task list` shows the tasks")
        return self._tasks([row])[0]

    def list_tasks(
        self,
        *,
        statuses: Sequence[Status] = (),
        ready: bool = False,
        labels: dict[str, str] | None = None,
    ) -> list[Task]:
        """Tasks in id order. ``ready`` means claimable now: queued, dependencies done, and no
        path lock in the way."""
        where: list[str] = []
        params: list[str] = []
        if ready:
            where.append(
                "status = 'queued' AND unmet_deps = 0 AND (not_before IS NULL OR not_before <= ?)"
            )
            params.append(format_time(self.clock.now()))
        if statuses:
            where.append(f"status IN ({_qmarks(len(statuses))})")
            params.extend(str(status) for status in statuses)
        for key, value in (labels or {}).items():
            where.append("json_extract(labels, ?) = ?")
            params.extend([f'$."{key}"', value])
        sql = f"SELECT {_TASK_COLUMNS} FROM tasks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.db.connection.execute(sql + " ORDER BY id", params).fetchall()
        tasks = self._tasks(rows)
        if ready:
            held = self._held_globs(self.db.connection)
            tasks = [task for task in tasks if not globs.has_conflict(task.paths, held)]
        return tasks

    def held_locks(self) -> list[HeldLock]:
        rows = self.db.connection.execute(
            "SELECT l.task_id, l.glob, l.holder, l.lease_epoch, l.acquired_at, t.lease_expires_at"
            " FROM path_locks l JOIN tasks t ON t.id = l.task_id ORDER BY l.task_id, l.glob"
        ).fetchall()
        return [HeldLock(r[0], r[1], r[2], r[3], parse_time(r[4]), parse_time(r[5])) for r in rows]

    def live_leases(self) -> list[tuple[int, str, list[str], str, int]]:
        """Every lease alive now (claimed or running, not expired): task id, title, globs,
        holder and epoch. What the ``PreToolUse`` hook judges a write against."""
        leased = tuple(str(status) for status in LEASED)
        rows = self.db.connection.execute(
            "SELECT id, title, paths, lease_holder, lease_epoch FROM tasks"
            f" WHERE status IN ({_qmarks(len(leased))}) AND lease_expires_at > ? ORDER BY id",
            (*leased, format_time(self.clock.now())),
        ).fetchall()
        return [(row[0], row[1], json.loads(row[2]), row[3], row[4]) for row in rows]

    def leased_since(self, since: datetime, *, exclude: int) -> dict[int, list[str]]:
        """The paths of every task but ``exclude`` that held a lease at some time since
        ``since``: leased now, claimed since, or finished since (claimed before). With several
        agents in one working tree, a change under these paths may be that task's work.

        Scans the tasks table (no index on these times): called once per executed run, a few
        milliseconds at 100,000 tasks, next to a run that takes seconds."""
        stamp = format_time(since)
        rows = self.db.connection.execute(
            "SELECT id, paths FROM tasks WHERE id != ? AND paths != '[]' AND ("
            " status IN ('claimed', 'running') OR claimed_at >= ?"
            " OR (finished_at >= ? AND claimed_at IS NOT NULL))",
            (exclude, stamp, stamp),
        ).fetchall()
        return {row[0]: json.loads(row[1]) for row in rows}

    def edges(self, task_id: int | None = None, *, direction: str = "up") -> list[tuple[int, int]]:
        """Dependency edges (task, depends_on): all of them, or those reachable from
        ``task_id`` going up (its dependencies) or down (its dependents)."""
        connection = self.db.connection
        if task_id is None:
            rows = connection.execute("SELECT task_id, depends_on FROM task_deps").fetchall()
        else:
            self.get(task_id)
            query = _ANCESTOR_EDGES if direction == "up" else _DESCENDANT_EDGES
            rows = connection.execute(query, (task_id,)).fetchall()
        return sorted((row[0], row[1]) for row in rows)

    def count_by_status(self) -> dict[str, int]:
        rows = self.db.connection.execute("SELECT status, count(*) FROM tasks GROUP BY status")
        return {row[0]: row[1] for row in rows}

    # ---------------------------------------------------------------- creating

    def create(self, spec: NewTask, ruling: Ruling | None = None) -> Task:
        """Insert one task, with the policy's ruling recorded in the same transaction.

        Unknown dependencies are rejected and nothing is written. A denial is recorded and
        raised (``PolicyDenied``) with no task created; ``require_approval`` creates the task
        blocked until a person approves it.
        """
        if ruling is None:
            return self.create_many([spec])[0]
        refusal: AictlError | None = None
        with self.db.transaction() as connection:
            self.db.announce("created")  # daemons waiting on the queue wake
            now = self.clock.now()
            if ruling.effect == "deny":
                self.decisions.enforce(ruling, at=now, task_id=None)
                refusal = PolicyDenied(
                    f"policy denies creating task {spec.title!r}: {ruling.reason}"
                )
            else:
                task = self._insert(connection, spec, format_time(now))
                self.decisions.enforce(ruling, at=now, task_id=task.id)
                if ruling.effect == "require_approval":
                    self._await_approval(connection, task, ruling.reason, format_time(now))
                return self.get(task.id)
        assert refusal is not None
        raise refusal

    def create_many(self, specs: Iterable[NewTask]) -> list[Task]:
        """Insert tasks in one transaction (all or none), each depending only on existing ones."""
        with self.db.transaction() as connection:
            self.db.announce("created")  # daemons waiting on the queue wake
            now = format_time(self.clock.now())
            return [self._insert(connection, spec, now) for spec in specs]

    def _insert(self, connection: sqlite3.Connection, spec: NewTask, now: str) -> Task:
        deps = sorted(set(spec.depends_on))
        statuses = self._statuses(connection, deps)
        unmet = sum(1 for dep in deps if statuses[dep] != Status.DONE)
        status, reason = Status.QUEUED, self._block_reason(statuses)
        if reason:
            status = next_status(status, "block")
        row = connection.execute(
            _INSERT_TASK,
            (
                spec.title,
                spec.description,
                spec.type,
                spec.priority,
                str(status),
                json.dumps(spec.labels),
                json.dumps(spec.requires),
                json.dumps(list(dict.fromkeys(spec.paths))),  # a glob is locked once
                unmet,
                spec.max_attempts,
                reason,
                now,
                now,
                json.dumps(spec.skills),
            ),
        ).fetchone()
        connection.executemany(
            "INSERT INTO task_deps (task_id, depends_on) VALUES (?, ?)",
            [(row["id"], dep) for dep in deps],
        )
        task = self._task(row, deps)
        self.audit.append(
            now,
            "task.created",
            self.actor,
            task.id,
            {
                "title": task.title,
                "priority": task.priority,
                "paths": task.paths,
                "depends_on": deps,
                "status": str(task.status),
                "max_attempts": task.max_attempts,
            },
        )
        return task

    def link(self, task_id: int, depends_on: Sequence[int]) -> Task:
        """Make ``task_id`` depend on more tasks. An edge that would close a cycle is refused
        with the cycle named, and nothing is written."""
        with self.db.transaction() as connection:
            self.db.announce("linked")  # daemons waiting on the queue wake
            task = self.get(task_id)
            if task.status not in (Status.QUEUED, Status.BLOCKED):
                raise IllegalTransition(
                    f"cannot add dependencies to task {task_id}: it is {task.status}",
                    hint="dependencies can be added to queued or blocked tasks only",
                )
            statuses = self._statuses(connection, depends_on)
            now = format_time(self.clock.now())
            for dep in depends_on:
                cycle = cycle_closed_by(
                    connection.execute(_ANCESTOR_EDGES, (dep,)).fetchall(), task_id, dep
                )
                if cycle:
                    raise DependencyCycle(cycle)
                added = connection.execute(
                    "INSERT INTO task_deps (task_id, depends_on) VALUES (?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (task_id, dep),
                ).rowcount
                if added and statuses[dep] != Status.DONE:
                    connection.execute(
                        "UPDATE tasks SET unmet_deps = unmet_deps + 1, updated_at = ? WHERE id = ?",
                        (now, task_id),
                    )
            self.audit.append(
                now, "task.linked", self.actor, task_id, {"depends_on": list(depends_on)}
            )
            self._refresh_block(connection, task_id, now)
            self._propagate(connection, task_id, now)
            return self.get(task_id)

    def unlink(self, task_id: int, depends_on: Sequence[int]) -> Task:
        with self.db.transaction() as connection:
            self.db.announce("unlinked")  # daemons waiting on the queue wake
            task = self.get(task_id)
            if task.status not in (Status.QUEUED, Status.BLOCKED):
                raise IllegalTransition(
                    f"cannot remove dependencies of task {task_id}: it is {task.status}"
                )
            statuses = self._statuses(connection, depends_on)
            now = format_time(self.clock.now())
            for dep in depends_on:
                removed = connection.execute(
                    "DELETE FROM task_deps WHERE task_id = ? AND depends_on = ?", (task_id, dep)
                ).rowcount
                if not removed:
                    raise InvalidInput(f"task {task_id} does not depend on task {dep}")
                if statuses[dep] != Status.DONE:
                    connection.execute(
                        "UPDATE tasks SET unmet_deps = unmet_deps - 1, updated_at = ? WHERE id = ?",
                        (now, task_id),
                    )
            self.audit.append(
                now, "task.unlinked", self.actor, task_id, {"depends_on": list(depends_on)}
            )
            self._refresh_block(connection, task_id, now)
            self._propagate(connection, task_id, now)
            return self.get(task_id)

    # ---------------------------------------------------------------- claiming

    @retried_on_conflict
    def claim(
        self,
        holder: str,
        ttl: timedelta,
        task_id: int | None = None,
        decide: Callable[[Task], Ruling] | None = None,
    ) -> Claim:
        """Claim a task and lock its paths in one transaction that succeeds or fails whole.

        Without ``task_id``: the first ready task (priority, then age) whose globs intersect no
        held lock and that ``decide`` (the policy) allows for ``holder``. Every decision is
        recorded in this transaction; a denied candidate is skipped, one that needs approval is
        blocked until approved. Expired leases are swept first, in a separate statement.
        Raises ``NothingReady`` (saying why), ``TaskHeld``, ``LockHeld``, ``PolicyDenied``,
        ``ApprovalRequired`` or ``IllegalTransition``, after committing what was recorded.
        On PostgreSQL, a claim without ``task_id`` and ``decide`` runs in the server
        (``_claim_in_server``).
        """
        if task_id is None and decide is None and self._in_server():
            return self._claim_in_server(holder, ttl)
        refusal: AictlError | None = None
        with self.db.transaction(concurrent=True, serial="claims") as connection:
            now = self.clock.now()
            self._sweep(connection, now)
            held = connection.execute("SELECT task_id, glob FROM path_locks").fetchall()
            locked = [0]
            awaiting: list[tuple[Task, Ruling]] = []
            try:
                if task_id is not None:
                    self._check_claimable(connection, task_id, held, now)
                    candidates: Iterable[int] = [task_id]
                else:
                    candidates = self._ready_ids(connection, [row[1] for row in held], locked, now)
                denied = 0
                for candidate in candidates:
                    if not self._hold(connection, candidate, walking=task_id is None):
                        if task_id is not None:  # raises: another claim took it meanwhile
                            self._check_claimable(connection, task_id, held, now)
                        continue
                    task = self.get(candidate) if decide else None
                    if task is None or decide is None:
                        return self._take(connection, holder, ttl, candidate)
                    ruling = decide(task)
                    enforced = self._enforce_claim(task, ruling, now, walking=task_id is None)
                    if enforced == "allow":
                        return self._take(connection, holder, ttl, candidate)
                    if enforced == "require_approval":
                        awaiting.append((task, ruling))
                    else:
                        denied += 1
                    if task_id is not None:
                        raise self._claim_refusal(task, ruling, holder, enforced)
                raise self._why_nothing_ready(connection, now, locked[0], denied, len(awaiting))
            except AictlError as error:
                # Raised after the commit: the sweep, the decision records and the approval
                # blocks must stick even when nothing can be claimed.
                refusal = error
            finally:
                # Applied after the walk over the ready index, not while its cursor is open.
                for task, ruling in awaiting:
                    self._await_approval(connection, task, ruling.reason, format_time(now))
        assert refusal is not None
        raise refusal

    def _hold(self, connection: sqlite3.Connection, task_id: int, *, walking: bool) -> bool:
        """Hold a ready task's row until the claim commits (``_HOLD_READY``); False when it is
        no longer ready, or (``walking``) another claim holds it. SQLite: True (one writer)."""
        if not self.db.row_locks:
            return True
        sql = _HOLD_READY + ("SKIP LOCKED" if walking else "")
        return connection.execute(sql, (task_id,)).fetchone() is not None

    def _in_server(self) -> bool:
        """Whether this write runs as one of the server's hot-path functions: on PostgreSQL
        (``Database.hot_path_in_server``), outside any transaction of the caller's."""
        return self.db.hot_path_in_server and self.db.depth == 0

    def _claim_in_server(self, holder: str, ttl: timedelta) -> Claim:
        """The claim as one call of ``aictl_claim``: the first ready task whose globs overlap
        no held lock, its locks and its audit row, in one round trip. The function hands back
        what only Python decides: an expired lease (swept here, an exclusive write) and pairs
        of globs whose overlap it does not know yet (decided here by the glob automata,
        remembered in ``glob_pairs``); then it is called again."""
        import secrets  # as in _take

        secret = secrets.token_urlsafe(18)
        seconds = ttl.total_seconds()
        while True:
            now = self.clock.now()
            row = self.db.call(
                _SERVER_CLAIM,
                (
                    holder,
                    hash_secret(secret),
                    seconds,
                    json.dumps(seconds),
                    format_time(now + ttl),
                    format_time(now),
                    globs.OVERLAP_VERSION,
                ),
            )
            outcome, locked, missing = row[:3]
            if outcome == "taken":
                task = self._task_of(dict(zip(row.keys()[3:], row[3:], strict=True)))
                return Claim(task, LeaseToken(task.id, task.lease_epoch, secret))
            if outcome == "sweep":
                self.sweep()
            elif outcome == "unknown":
                self._learn_overlaps(missing)
            else:
                raise self._why_nothing_ready(self.db.connection, now, locked)

    def _learn_overlaps(self, flat: Sequence[str]) -> None:
        """Decide pairs of globs (``a1, b1, a2, b2, ...``) with aictl's glob automata and
        remember them for the server's claim (a memo of a pure function: no audit row), under
        this aictl's ``OVERLAP_VERSION``; the answers of older versions go."""
        version = globs.OVERLAP_VERSION
        pairs = list(zip(flat[::2], flat[1::2], strict=True))
        connection = self.db.connection
        connection.execute("DELETE FROM glob_pairs WHERE version < ?", (version,))
        connection.executemany(
            _LEARN_OVERLAP, [(version, a, b, globs.globs_intersect(a, b)) for a, b in pairs]
        )

    def _call_fenced(
        self, sql: str, token: LeaseToken, event: str, now: datetime, values: tuple[Any, ...]
    ) -> Task:
        """One fenced hot-path function: the task as written, or why the fence refused."""
        row = self.db.call(sql, (token.task_id, token.epoch, token.secret_hash, *values))
        if row is None:
            raise self._lease_lost(self.db.connection, token, event, now)
        return self._task(row)

    def _enforce_claim(self, task: Task, ruling: Ruling, now: datetime, *, walking: bool) -> str:
        """Record the claim decision; an approval already given satisfies require_approval.

        While ``walking`` the ready queue, a denial identical to one already recorded (same
        task state, subject and policy) is not recorded again: a denied task ahead in the
        queue would otherwise add a record to every later claim by that holder.
        """
        enforced = ruling.effect
        if enforced == "require_approval" and task.approval == "approved":
            enforced = "allow"
            note = {
                "id": "approval",
                "effect": "allow",
                "reason": f"approved by {task.approval_by}",
            }
            fields = {**ruling.fields, "rules": [*ruling.fields.get("rules", []), note]}
            ruling = ruling._replace(fields=fields)
        if (
            walking
            and enforced == "deny"
            and self.decisions.repeats(ruling, task_id=task.id, effect=enforced)
        ):
            return enforced
        epoch = task.lease_epoch + 1 if enforced == "allow" else None
        self.decisions.enforce(ruling, at=now, task_id=task.id, lease_epoch=epoch, effect=enforced)
        return enforced

    @staticmethod
    def _claim_refusal(task: Task, ruling: Ruling, holder: str, enforced: str) -> PolicyDenied:
        if enforced == "require_approval":
            return ApprovalRequired(
                f"task {task.id} needs approval before it is claimed: {ruling.reason}",
                hint=f"a person approves it with `aictl task approve {task.id}`",
            )
        return PolicyDenied(
            f"policy denies claim of task {task.id} by {holder}: {ruling.reason}",
            hint=f"`aictl policy explain --task {task.id} --ai {holder} --action claim` shows why",
        )

    def _await_approval(
        self, connection: sqlite3.Connection, task: Task, why: str, stamp: str
    ) -> None:
        """Block a queued (or already blocked) task until a person approves it; its dependents
        block too, as behind any dependency that cannot finish."""
        if task.status != Status.BLOCKED:
            next_status(task.status, "block")
        reason = f"awaiting approval: {why}"
        connection.execute(
            "UPDATE tasks SET status = 'blocked', blocked_reason = ?, approval = 'pending',"
            " approval_by = NULL, updated_at = ? WHERE id = ? AND status IN ('queued', 'blocked')",
            (reason, stamp, task.id),
        )
        self.audit.append(stamp, "task.awaiting_approval", "aictl", task.id, {"reason": reason})
        self._block_dependents(connection, task.id, stamp)

    def _take(
        self,
        connection: sqlite3.Connection,
        holder: str,
        ttl: timedelta,
        chosen: int,
    ) -> Claim:
        # The clock is read again now, after the reads that found the task ready: a
        # dependency completed by a concurrent transaction (PostgreSQL) committed before
        # them, so, stamped by the same clock (one host's), its finished_at is not later
        # than this claimed_at.
        now = self.clock.now()
        stamp = format_time(now)
        # The secret is returned to the claimant only; the row keeps its hash, the audit
        # log and the decision records neither.
        import secrets  # here, not at the top: the PreToolUse hook never claims

        secret = secrets.token_urlsafe(18)
        row = connection.execute(
            _CLAIM,
            (
                holder,
                hash_secret(secret),
                ttl.total_seconds(),
                format_time(now + ttl),
                stamp,
                stamp,
                stamp,
                chosen,
            ),
        ).fetchone()
        task = self._tasks([row])[0]
        connection.executemany(
            "INSERT INTO path_locks (task_id, glob, holder, lease_epoch, acquired_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(task.id, glob, holder, task.lease_epoch, stamp) for glob in task.paths],
        )
        self.audit.append(
            stamp,
            "task.claimed",
            holder,
            task.id,
            {
                "epoch": task.lease_epoch,
                "ttl_seconds": ttl.total_seconds(),
                "expires_at": format_time(now + ttl),
                "paths": task.paths,
                "attempt": task.attempts,
            },
        )
        return Claim(task, LeaseToken(task.id, task.lease_epoch, secret))

    def _ready_ids(
        self,
        connection: sqlite3.Connection,
        held_globs: list[str],
        locked: list[int],
        now: datetime,
    ) -> Iterator[int]:
        """Ready task ids in claim order, skipping (and counting in ``locked``) those whose
        globs intersect a held lock. Read in pages that double (8, 16, 32, ... rows): usually
        only the first row is wanted, and PostgreSQL's client reads a whole result at once
        (SQLite's cursor would step lazily; 100k ready rows per claim would not). Each page
        starts after the last row read, so each id comes once; on PostgreSQL a task made
        ready meanwhile ahead of that row waits for the next claim."""
        stamp = format_time(now)
        rows = connection.execute(_READY_FIRST_PAGE, (stamp, FIRST_READY_PAGE)).fetchall()
        page = FIRST_READY_PAGE
        while True:
            for row in rows:
                paths = json.loads(row[1])
                if paths and globs.has_conflict(paths, held_globs):
                    locked[0] += 1
                    continue
                yield int(row[0])
            if len(rows) < page:
                return
            last_id, last_priority = rows[-1][0], rows[-1][2]
            page *= 2
            rows = connection.execute(
                _READY_NEXT_PAGE, (stamp, last_priority, last_priority, last_id, page)
            ).fetchall()

    def _why_nothing_ready(
        self,
        connection: sqlite3.Connection,
        now: datetime,
        locked: int,
        denied: int = 0,
        awaiting: int = 0,
    ) -> NothingReady:
        counts = {
            row[0]: row[1]
            for row in connection.execute(
                "SELECT status, count(*) FROM tasks"
                " WHERE status IN ('queued', 'claimed', 'running')"
                " GROUP BY status"
            )
        }
        backing_off, first_ready = connection.execute(_BACKING_OFF, (format_time(now),)).fetchone()
        queued = counts.get("queued", 0) - backing_off
        busy = counts.get("claimed", 0) + counts.get("running", 0)
        backoff_note = (
            f"{backing_off} task(s) wait for a retry backoff, the first ready at "
            f"{first_ready[:19].replace('T', ' ')} UTC"
            if backing_off
            else ""
        )
        if denied or awaiting:
            return NothingReady(
                f"nothing ready: policy denied {denied} ready task(s) and sent {awaiting} "
                "to await approval",
                hint="`aictl policy decisions` lists the decisions; `aictl task approve ID`",
            )
        if locked:
            return NothingReady(
                f"nothing ready: {locked} ready task(s) are blocked by path locks "
                f"held by {busy} claimed or running task(s)"
                + (f"; {backoff_note}" if backoff_note else ""),
                hint="`aictl lock list` shows the held locks",
            )
        if backing_off:
            return NothingReady(
                f"nothing ready: {backoff_note}",
                hint="`aictl task list --status queued` shows them; wait, or claim another task",
            )
        if queued:
            return NothingReady(
                f"nothing ready: {queued} queued task(s) wait on dependencies",
                hint="`aictl task deps ID` shows what a task waits on",
            )
        return NothingReady(
            "nothing ready: the queue is empty"
            + (f" ({busy} task(s) claimed or running)" if busy else ""),
            hint="create work with `aictl task create`",
        )

    def _check_claimable(
        self,
        connection: sqlite3.Connection,
        task_id: int,
        held: list[sqlite3.Row],
        now: datetime,
    ) -> None:
        task = self.get(task_id)
        if task.status in LEASED:
            raise TaskHeld(
                f"task {task_id} is {task.status} by {task.lease_holder} "
                f"until {format_time(task.lease_expires_at or self.clock.now())}",
                hint="wait for the lease to end, or claim another task",
            )
        if task.status == Status.BLOCKED:
            raise IllegalTransition(
                f"cannot claim task {task_id}: it is blocked ({task.blocked_reason})"
            )
        next_status(task.status, "claim")
        if task.not_before is not None and task.not_before > now:
            raise NothingReady(
                f"task {task_id} is not ready: it waits for a retry backoff until "
                f"{task.not_before:%Y-%m-%d %H:%M:%S} UTC",
                hint=f"its last failure: {task.failure_reason}",
            )
        waiting = [
            (dep, status)
            for dep, status in self._statuses(connection, task.depends_on).items()
            if status != Status.DONE
        ]
        if waiting:
            names = ", ".join(f"{dep} ({status})" for dep, status in waiting)
            raise NothingReady(f"task {task_id} is not ready: it waits on {names}")
        conflicts = globs.find_conflicts(
            task.paths, [(row[0], row[1]) for row in held], explain=True
        )
        if conflicts:
            first = conflicts[0]
            raise LockHeld(
                f"task {task_id} cannot take its path locks: {first.wanted!r} overlaps "
                f"{first.held!r} held by task {first.holder}"
                + (f" (both cover {first.witness!r})" if first.witness else ""),
                hint="`aictl lock check GLOB` explains a conflict",
            )

    # ------------------------------------------------------- the holder's writes

    def _fence(self, token: LeaseToken, now: datetime) -> tuple[str, tuple[Any, ...]]:
        """The WHERE clause that admits only the current epoch of a live lease, and only with
        its secret (compared as SHA-256 hashes: the secret itself is never stored)."""
        return (
            "id = ? AND lease_epoch = ? AND lease_secret_hash = ? AND lease_expires_at > ?",
            (token.task_id, token.epoch, token.secret_hash, format_time(now)),
        )

    def _fenced_update(
        self,
        connection: sqlite3.Connection,
        token: LeaseToken,
        event: str,
        assignments: str,
        values: tuple[Any, ...],
        now: datetime,
    ) -> sqlite3.Row:
        clause, fence_values = self._fence(token, now)
        allowed = sources(event) if event != "heartbeat" else tuple(str(s) for s in LEASED)
        row: sqlite3.Row | None = connection.execute(
            f"UPDATE tasks SET {assignments} WHERE {clause} AND status IN ({_qmarks(len(allowed))})"
            f" RETURNING {_TASK_COLUMNS}",
            (*values, *fence_values, *allowed),
        ).fetchone()
        if row is None:
            raise self._lease_lost(connection, token, event, now)
        return row

    def _lease_lost(
        self, connection: sqlite3.Connection, token: LeaseToken, event: str, now: datetime
    ) -> Exception:
        """Explain why a fenced write changed nothing."""
        row = connection.execute(
            "SELECT status, lease_epoch, lease_holder, lease_expires_at, lease_secret_hash"
            " FROM tasks WHERE id = ?",
            (token.task_id,),
        ).fetchone()
        if row is None:
            return TaskNotFound(f"no task {token.task_id}")
        status, epoch, holder, expires = Status(row[0]), row[1], row[2], row[3]
        hint = lost_lease_hint(token.task_id, status)
        if epoch == token.epoch and row[4] != token.secret_hash:
            # Checked before expiry and status: a wrong secret learns nothing about the lease.
            return LeaseLost(
                f"lease token {token.label} of task {token.task_id} has the wrong secret:"
                f" only the holder of the lease can use it",
                hint="use the whole token returned by the claim (<task>:<epoch>:<secret>)",
            )
        if epoch != token.epoch:
            return LeaseLost(
                f"lease {token.label} is stale: task {token.task_id} was claimed again "
                f"(epoch {epoch}; {current_holder(status, holder)})",
                hint=hint,
            )
        if status not in LEASED:
            return LeaseLost(
                f"lease {token.label} is no longer valid: task {token.task_id} is {status}",
                hint=hint,
            )
        if expires <= format_time(now):
            return LeaseLost(f"lease {token.label} expired at {expires}", hint=hint)
        if event == "heartbeat":  # pragma: no cover - a live lease always accepts a heartbeat
            raise AssertionError("heartbeat refused on a live lease")
        next_status(status, event)
        raise AssertionError(f"{event} refused on a live lease in status {status}")

    @retried_on_conflict
    def heartbeat(self, token: LeaseToken, ttl: timedelta | None = None) -> Task:
        """Extend a live lease by its TTL (or ``ttl``) from now."""
        with self.db.transaction(concurrent=True) as connection:
            now = self.clock.now()
            if ttl is None:
                stored = connection.execute(
                    "SELECT lease_ttl_seconds FROM tasks WHERE id = ?", (token.task_id,)
                ).fetchone()
                ttl = timedelta(seconds=stored[0] if stored and stored[0] else 0)
            stamp = format_time(now)
            row = self._fenced_update(
                connection,
                token,
                "heartbeat",
                "lease_expires_at = ?, lease_ttl_seconds = ?, heartbeat_at = ?, updated_at = ?",
                (format_time(now + ttl), ttl.total_seconds(), stamp, stamp),
                now,
            )
            return self._tasks([row])[0]

    def lease_loss(self, token: LeaseToken) -> Exception | None:
        """None while ``token`` is the current epoch of a live lease (a read, no write);
        otherwise the ``LeaseLost`` that a fenced write would raise, saying why."""
        connection = self.db.connection
        now = self.clock.now()
        clause, values = self._fence(token, now)
        leased = tuple(str(status) for status in LEASED)
        row = connection.execute(
            f"SELECT 1 FROM tasks WHERE {clause} AND status IN ({_qmarks(len(leased))})",
            (*values, *leased),
        ).fetchone()
        return None if row is not None else self._lease_lost(connection, token, "check", now)

    @retried_on_conflict
    def start(self, token: LeaseToken) -> Task:
        if self._in_server():
            now = self.clock.now()
            data = canonical({"epoch": token.epoch})
            values = (format_time(now), list(sources("start")), self.actor, data)
            return self._call_fenced(_SERVER_START, token, "start", now, values)
        with self.db.transaction(concurrent=True) as connection:
            now = self.clock.now()
            stamp = format_time(now)
            row = self._fenced_update(
                connection,
                token,
                "start",
                "status = 'running', started_at = ?, heartbeat_at = ?, updated_at = ?",
                (stamp, stamp, stamp),
                now,
            )
            task = self._tasks([row])[0]
            self._record(stamp, "task.started", task, token)
            return task

    @retried_on_conflict
    def complete(
        self, token: LeaseToken, result: str | None = None, evidence: dict[str, Any] | None = None
    ) -> Task:
        """Finish the task, release its locks and count it done for its dependents."""
        from aictl.domain.audit_replay import evidence_digest  # not on the hook's path

        stored = None if evidence is None else json.dumps(evidence)
        recorded = {
            "result": result,
            "evidence": sorted(evidence) if evidence else [],
            # the digest of the evidence as stored: `audit verify` compares the table's
            "evidence_digest": evidence_digest(None if stored is None else json.loads(stored)),
        }
        if self._in_server():
            now = self.clock.now()
            data = canonical({"epoch": token.epoch, **recorded})
            values = (format_time(now), list(sources("complete")), self.actor, data, result, stored)
            return self._call_fenced(_SERVER_COMPLETE, token, "complete", now, values)
        with self.db.transaction(concurrent=True) as connection:
            self.db.announce("completed")  # daemons waiting on the queue wake
            now = self.clock.now()
            stamp = format_time(now)
            row = self._fenced_update(
                connection,
                token,
                "complete",
                "status = 'done', lease_expires_at = NULL, finished_at = ?, updated_at = ?,"
                " result = ?, evidence = ?, failure_reason = NULL",
                (stamp, stamp, result, stored),
                now,
            )
            self._drop_locks(connection, token.task_id)
            connection.execute(
                "UPDATE tasks SET unmet_deps = unmet_deps - 1, updated_at = ?"
                " WHERE id IN (SELECT task_id FROM task_deps WHERE depends_on = ?)",
                (stamp, token.task_id),
            )
            task = self._tasks([row])[0]
            self._record(stamp, "task.completed", task, token, **recorded)
            return task

    def fail(
        self,
        token: LeaseToken,
        reason: str,
        *,
        retry: bool = True,
        backoff: timedelta | None = None,
    ) -> Task:
        """Record a failure: back to the queue while attempts remain (and ``retry``), else
        failed, which blocks every dependent. A requeued task is not claimed before
        ``now + backoff`` (its ``not_before``); without ``backoff`` it is ready at once."""
        with self.db.transaction() as connection:
            self.db.announce("failed")  # daemons waiting on the queue wake
            now = self.clock.now()
            counts = connection.execute(
                "SELECT attempts, max_attempts FROM tasks WHERE id = ?", (token.task_id,)
            ).fetchone()
            event = failure_event(counts[0], counts[1], retry=retry) if counts else "fail"
            stamp = format_time(now)
            not_before: str | None = None
            if event == "requeue":
                if backoff is not None and backoff > timedelta(0):
                    not_before = format_time(now + backoff)
                assignments = (
                    "status = 'queued', lease_expires_at = NULL, failure_reason = ?, not_before = ?"
                )
                values: tuple[Any, ...] = (reason, not_before)
            else:
                assignments = (
                    "status = 'failed', lease_expires_at = NULL, failure_reason = ?,"
                    " finished_at = ?"
                )
                values = (reason, stamp)
            row = self._fenced_update(
                connection, token, event, assignments + ", updated_at = ?", (*values, stamp), now
            )
            self._drop_locks(connection, token.task_id)
            task = self._tasks([row])[0]
            kind = "task.failed" if event == "fail" else "task.requeued"
            extra = {"not_before": not_before} if event == "requeue" else {}
            self._record(stamp, kind, task, token, reason=reason, attempts=task.attempts, **extra)
            if event == "fail":
                self._block_dependents(connection, token.task_id, stamp)
            return task

    def release(self, token: LeaseToken) -> Task:
        """Give the task back untouched: it is queued again and the attempt is not counted."""
        with self.db.transaction() as connection:
            self.db.announce("released")  # daemons waiting on the queue wake
            now = self.clock.now()
            row = self._fenced_update(
                connection,
                token,
                "requeue",
                "status = 'queued', lease_expires_at = NULL, attempts = max(attempts - 1, 0),"
                " updated_at = ?",
                (format_time(now),),
                now,
            )
            self._drop_locks(connection, token.task_id)
            task = self._tasks([row])[0]
            self._record(now, "task.released", task, token)
            return task

    # ------------------------------------------------------ operator's actions

    def cancel(self, task_id: int, reason: str | None = None) -> Task:
        """Cancel a task in any live status; a holder's lease dies with it."""
        with self.db.transaction() as connection:
            self.db.announce("cancelled")  # daemons waiting on the queue wake
            task = self.get(task_id)
            next_status(task.status, "cancel")
            stamp = format_time(self.clock.now())
            connection.execute(
                "UPDATE tasks SET status = 'cancelled', lease_expires_at = NULL,"
                " blocked_reason = NULL, failure_reason = ?, finished_at = ?, updated_at = ?"
                " WHERE id = ? AND status = ?",
                (reason or "cancelled", stamp, stamp, task_id, str(task.status)),
            )
            self._drop_locks(connection, task_id)
            self.audit.append(
                stamp,
                "task.cancelled",
                self.actor,
                task_id,
                {"reason": reason, "was": str(task.status)},
            )
            self._block_dependents(connection, task_id, stamp)
            return self.get(task_id)

    def retry(self, task_id: int) -> Task:
        """Queue a failed or cancelled task again with fresh attempts, and unblock the
        dependents it was blocking."""
        with self.db.transaction() as connection:
            self.db.announce("retried")  # daemons waiting on the queue wake
            task = self.get(task_id)
            next_status(task.status, "retry")
            stamp = format_time(self.clock.now())
            connection.execute(
                "UPDATE tasks SET status = 'queued', attempts = 0, failure_reason = NULL,"
                " finished_at = NULL, not_before = NULL, result = NULL, updated_at = ?"
                " WHERE id = ? AND status = ?",
                (stamp, task_id, str(task.status)),
            )
            self.audit.append(stamp, "task.retried", self.actor, task_id, {"was": str(task.status)})
            if task.approval in ("pending", "rejected"):
                # The approval was never given: a retry reopens the question, it never skips it.
                queued = self.get(task_id)
                self._await_approval(connection, queued, f"retried after {task.status}", stamp)
                return self.get(task_id)
            self._refresh_block(connection, task_id, stamp)
            self._unblock_dependents(connection, task_id, stamp)
            return self.get(task_id)

    def integrated(self, task_id: int, result: str, evidence: dict[str, Any] | None = None) -> Task:
        """Mark done a task whose worktree's work was integrated by ``aictl task integrate``
        (a failed task, or a queued one whose run died during its integration), count it done
        for its dependents and unblock those it was blocking. No lease is involved: the caller
        holds the integration lock, and the status is checked in this transaction."""
        from aictl.domain.audit_replay import evidence_digest  # not on the hook's path

        with self.db.transaction() as connection:
            self.db.announce("integrated")  # daemons waiting on the queue wake
            task = self.get(task_id)
            next_status(task.status, "integrate")
            stamp = format_time(self.clock.now())
            connection.execute(
                "UPDATE tasks SET status = 'done', lease_expires_at = NULL, failure_reason = NULL,"
                " not_before = NULL, finished_at = ?, updated_at = ?, result = ?,"
                " evidence = coalesce(?, evidence) WHERE id = ? AND status = ?",
                (
                    stamp,
                    stamp,
                    result,
                    None if evidence is None else json.dumps(evidence),
                    task_id,
                    str(task.status),
                ),
            )
            connection.execute(
                "UPDATE tasks SET unmet_deps = unmet_deps - 1, updated_at = ?"
                " WHERE id IN (SELECT task_id FROM task_deps WHERE depends_on = ?)",
                (stamp, task_id),
            )
            stored = connection.execute(
                "SELECT evidence FROM tasks WHERE id = ?", (task_id,)
            ).fetchone()[0]
            self.audit.append(
                stamp,
                "task.integrated",
                self.actor,
                task_id,
                {
                    "was": str(task.status),
                    "result": result,
                    "evidence_digest": evidence_digest(
                        None if stored is None else json.loads(stored)
                    ),
                },
            )
            self._unblock_dependents(connection, task_id, stamp)
            return self.get(task_id)

    def approve(self, task_id: int, ruling: Ruling, by: str) -> Task:
        """Record whether ``by`` may approve and, if so, release the task to the queue (or leave
        it blocked with its dependency reason if a dependency cannot finish)."""

        def apply(connection: sqlite3.Connection, task: Task, stamp: str) -> None:
            connection.execute(
                "UPDATE tasks SET approval = 'approved', approval_by = ?, updated_at = ?"
                " WHERE id = ?",
                (by, stamp, task.id),
            )
            self.audit.append(stamp, "task.approved", by, task.id, {})
            reason = self._block_reason(self._statuses(connection, task.depends_on))
            if reason:
                connection.execute(
                    "UPDATE tasks SET blocked_reason = ? WHERE id = ?", (reason, task.id)
                )
            else:
                self._refresh_block(connection, task.id, stamp)
                self._propagate(connection, task.id, stamp)

        return self._decide_approval(task_id, ruling, by, "approval", apply)

    def reject(self, task_id: int, ruling: Ruling, by: str, reason: str) -> Task:
        """Record whether ``by`` may reject and, if so, cancel the task; its dependents block."""

        def apply(connection: sqlite3.Connection, task: Task, stamp: str) -> None:
            next_status(task.status, "cancel")
            connection.execute(
                "UPDATE tasks SET status = 'cancelled', blocked_reason = NULL,"
                " approval = 'rejected', approval_by = ?, failure_reason = ?, finished_at = ?,"
                " updated_at = ? WHERE id = ?",
                (by, f"rejected by {by}: {reason}", stamp, stamp, task.id),
            )
            self.audit.append(stamp, "task.rejected", by, task.id, {"reason": reason})
            self._block_dependents(connection, task.id, stamp)

        return self._decide_approval(task_id, ruling, by, "rejection", apply)

    def _decide_approval(
        self,
        task_id: int,
        ruling: Ruling,
        by: str,
        what: str,
        apply: Callable[[sqlite3.Connection, Task, str], None],
    ) -> Task:
        """One transaction: check the task awaits approval, record the decision, and apply it
        when allowed. A refusal is raised after its record is committed."""
        refusal: AictlError | None = None
        with self.db.transaction() as connection:
            self.db.announce("decided")  # daemons waiting on the queue wake
            task = self.get(task_id)
            if task.status != Status.BLOCKED or task.approval != "pending":
                detail = (
                    f"it was {task.approval} by {task.approval_by}"
                    if task.approval in ("approved", "rejected")
                    else f"it is {task.status}"
                )
                raise IllegalTransition(f"task {task_id} is not awaiting approval ({detail})")
            now = self.clock.now()
            self.decisions.enforce(ruling, at=now, task_id=task_id)
            if ruling.effect == "allow":
                apply(connection, task, format_time(now))
                return self.get(task_id)
            refusal = PolicyDenied(
                f"policy denies the {what} of task {task_id} by {by}: {ruling.reason}"
            )
        raise refusal

    def sweep(self) -> list[Expiry]:
        """Return expired leases to the queue (or fail them past max attempts).

        Looks first, outside a transaction: every daemon sweeps at every tick and most ticks
        find nothing, which then costs one indexed read and no writer lock (on PostgreSQL
        an exclusive one, which every host's claims and completes would wait for). A lease
        that expires after the look is swept by the next tick, or by the next claim."""
        if self.db.depth == 0:
            stamp = format_time(self.clock.now())
            if self.db.connection.execute(_ANY_EXPIRED, (stamp,)).fetchone() is None:
                return []
        with self.db.transaction() as connection:
            return self._sweep(connection, self.clock.now())

    def _sweep(self, connection: sqlite3.Connection, now: datetime) -> list[Expiry]:
        stamp = format_time(now)
        done = []
        for task_id, attempts, max_attempts, holder, epoch in connection.execute(
            _EXPIRED, (stamp,)
        ).fetchall():
            event = failure_event(attempts, max_attempts, retry=True)
            outcome = next_status(Status.CLAIMED, event)
            reason = f"lease of {holder} (epoch {epoch}) expired"
            if outcome == Status.FAILED:
                reason += f"; {attempts} of {max_attempts} attempts used"
            # Conditional, for a concurrent claim's sweep: a lease completed or renewed since
            # it was read (a holder whose clock runs behind ours) is left alone.
            expired = connection.execute(
                "UPDATE tasks SET status = ?, lease_expires_at = NULL, failure_reason = ?,"
                " finished_at = CASE WHEN ? = 'failed' THEN ? END, updated_at = ?"
                " WHERE id = ? AND lease_epoch = ? AND status IN ('claimed', 'running')"
                " AND lease_expires_at <= ?",
                (str(outcome), reason, str(outcome), stamp, stamp, task_id, epoch, stamp),
            ).rowcount
            if not expired:
                continue
            self._drop_locks(connection, task_id)
            self.audit.append(
                stamp,
                "task.lease_expired",
                "aictl",
                task_id,
                {
                    "holder": holder,
                    "epoch": epoch,
                    "outcome": str(outcome),
                    "attempts": attempts,
                },
            )
            if outcome == Status.FAILED:
                self._block_dependents(connection, task_id, stamp)
            done.append(Expiry(task_id, holder, epoch, outcome))
        if done:
            self.db.announce("expired")
        return done

    # ----------------------------------------------------------------- helpers

    def _record(
        self, at: datetime | str, kind: str, task: Task, token: LeaseToken, **data: Any
    ) -> None:
        """An audit event written by the lease holder (the actor is the holder's name)."""
        self.audit.append(
            at, kind, task.lease_holder or self.actor, task.id, {"epoch": token.epoch, **data}
        )

    def _drop_locks(self, connection: sqlite3.Connection, task_id: int) -> None:
        connection.execute("DELETE FROM path_locks WHERE task_id = ?", (task_id,))

    def _held_globs(self, connection: sqlite3.Connection) -> list[str]:
        return [row[0] for row in connection.execute("SELECT glob FROM path_locks")]

    def _statuses(self, connection: sqlite3.Connection, ids: Iterable[int]) -> dict[int, Status]:
        wanted = sorted(set(ids))
        found: dict[int, Status] = {}
        for chunk in _chunks(wanted, 500):
            for row in connection.execute(
                f"SELECT id, status FROM tasks WHERE id IN ({_qmarks(len(chunk))})", chunk
            ):
                found[row[0]] = Status(row[1])
        missing = [task_id for task_id in wanted if task_id not in found]
        if missing:
            raise TaskNotFound(
                "unknown task id(s): " + ", ".join(map(str, missing)),
                hint="`aictl task list` shows the tasks",
            )
        return found

    @staticmethod
    def _block_reason(statuses: dict[int, Status]) -> str | None:
        bad = [
            f"dependency {dep} is {status}"
            for dep, status in sorted(statuses.items())
            if status in UNSATISFIABLE
        ]
        return "; ".join(bad) or None

    def _refresh_block(self, connection: sqlite3.Connection, task_id: int, stamp: str) -> None:
        """Block a queued task whose dependencies cannot finish; unblock a blocked one whose
        dependencies now can, unless it still awaits a person's approval."""
        current, approval = connection.execute(
            "SELECT status, approval FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        status = Status(current)
        deps = [
            row[0]
            for row in connection.execute(
                "SELECT depends_on FROM task_deps WHERE task_id = ?", (task_id,)
            )
        ]
        reason = self._block_reason(self._statuses(connection, deps))
        if reason and status == Status.QUEUED:
            next_status(status, "block")
            connection.execute(
                "UPDATE tasks SET status = 'blocked', blocked_reason = ?, updated_at = ?"
                " WHERE id = ?",
                (reason, stamp, task_id),
            )
            self.audit.append(stamp, "task.blocked", "aictl", task_id, {"reason": reason})
        elif not reason and status == Status.BLOCKED and approval != "pending":
            next_status(status, "unblock")
            connection.execute(
                "UPDATE tasks SET status = 'queued', blocked_reason = NULL, updated_at = ?"
                " WHERE id = ?",
                (stamp, task_id),
            )
            self.audit.append(stamp, "task.unblocked", "aictl", task_id, {})

    def _propagate(self, connection: sqlite3.Connection, task_id: int, stamp: str) -> None:
        """After a task's block state changed, carry the change down to its dependents."""
        status = connection.execute("SELECT status FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if status[0] == Status.BLOCKED:
            self._block_dependents(connection, task_id, stamp)
        elif status[0] == Status.QUEUED:
            self._unblock_dependents(connection, task_id, stamp)

    def _block_dependents(self, connection: sqlite3.Connection, task_id: int, stamp: str) -> None:
        """Block every queued task downstream of ``task_id``."""
        self._refresh_downstream(connection, task_id, stamp, Status.QUEUED)

    def _unblock_dependents(self, connection: sqlite3.Connection, task_id: int, stamp: str) -> None:
        """Unblock every blocked task downstream of ``task_id`` whose dependencies can finish."""
        self._refresh_downstream(connection, task_id, stamp, Status.BLOCKED)

    def _refresh_downstream(
        self, connection: sqlite3.Connection, task_id: int, stamp: str, status: Status
    ) -> None:
        """Walk the dependents (depth first) that are in ``status`` and refresh their block."""
        frontier = [task_id]
        while frontier:
            current = frontier.pop()
            for dependent, current_status in connection.execute(_DEPENDENTS, (current,)).fetchall():
                if current_status == status:
                    self._refresh_block(connection, dependent, stamp)
                    frontier.append(dependent)

    def _tasks(self, rows: Sequence[sqlite3.Row]) -> list[Task]:
        return [self._task(row) for row in rows]

    @classmethod
    def _task(cls, row: sqlite3.Row, deps: list[int] | None = None) -> Task:
        # dict(zip(...)): dict(row) looks every column up by name, four times slower
        return cls._task_of(dict(zip(row.keys(), row, strict=True)), deps)

    @staticmethod
    def _task_of(values: dict[str, Any], deps: list[int] | None = None) -> Task:
        listed = values.pop("deps")
        for name in _JSON_COLUMNS:
            if values[name] is not None:
                values[name] = _json_value(values[name])
        for name in _TIME_COLUMNS:
            if values[name] is not None:
                values[name] = parse_time(values[name])
        values["status"] = Status(values["status"])
        depends_on = deps if deps is not None else sorted(_json_value(listed))
        return Task(**values, depends_on=depends_on)


def _json_value(text: str) -> Any:
    """``json.loads(text)``, without the decoder for the empty list and object that most
    columns of most tasks hold (a listing decodes six columns per task)."""
    if text == "[]":
        return []
    if text == "{}":
        return {}
    return json.loads(text)


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
