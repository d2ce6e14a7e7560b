"""What the audit chain says the state should be: its task events replayed, and compared.

Pure: the store hands in the chain's rows and the current rows of the tables, and gets back the
first difference. ``audit verify`` uses this after the chain itself holds, so that a change made
to the ``tasks`` table or to a decision record with direct access to the database (a done task
set to cancelled, a forged result, a deny turned into an allow) is named, even though no audit
row was touched.

Each task event sets the fields it implies (``IMPLIED``): ``task.created`` the title, priority,
paths, dependencies and first status; ``task.claimed`` the status, lease epoch and holder;
``task.completed`` the result and the evidence digest; ``task.edited`` the fields it names; and
so on. A field no event has set is unknown and not compared: rows written before a field was
added to an event (``evidence_digest`` and ``max_attempts`` came with the signed checkpoints)
are checked as far as they go, and ``Replay.notes`` says what was left out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

FIELDS = (
    "status",
    "lease_epoch",
    "lease_holder",
    "approval",
    "result",
    "evidence",
    "title",
    "priority",
    "paths",
    "depends_on",
    "max_attempts",
)
"""The task fields compared, in the order they are compared (the first difference is named)."""

_STATUS_OF = {
    "task.claimed": "claimed",
    "task.started": "running",
    "task.completed": "done",
    "task.integrated": "done",
    "task.failed": "failed",
    "task.requeued": "queued",
    "task.released": "queued",
    "task.cancelled": "cancelled",
    "task.retried": "queued",
    "task.rejected": "cancelled",
    "task.blocked": "blocked",
    "task.unblocked": "queued",
    "task.awaiting_approval": "blocked",
}
"""Events that move a task to a fixed status (``task.created`` and ``task.lease_expired``
carry theirs in their data)."""


def evidence_digest(evidence: Any) -> str | None:
    """SHA-256 of the canonical JSON of a task's evidence as stored (None for none). The same
    function digests what ``complete`` writes and what ``verify`` reads back."""
    if evidence is None:
        return None
    text = json.dumps(evidence, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class ImpliedTask:
    """One task as its events describe it: ``values`` holds the known fields, ``rows`` the
    audit row that last set each one (to name it when the table disagrees)."""

    task_id: int
    created: bool = False
    values: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, tuple[int, str]] = field(default_factory=dict)

    def set(self, name: str, value: Any, seq: int, kind: str) -> None:
        self.values[name] = value
        self.rows[name] = (seq, kind)


@dataclass
class Replay:
    """The tasks the chain implies, and what it could not check."""

    tasks: dict[int, ImpliedTask] = field(default_factory=dict)
    unknown: dict[str, int] = field(default_factory=dict)
    """Per field, the number of tasks whose events do not carry it (older rows)."""


def replay(rows: Iterable[tuple[int, str, str, int | None, Mapping[str, Any]]]) -> Replay:
    """Replay ``(seq, kind, actor, task_id, data)`` rows, in chain order, into implied tasks."""
    result = Replay()
    for seq, kind, actor, task_id, data in rows:
        if task_id is None or not kind.startswith("task."):
            continue
        task = result.tasks.setdefault(task_id, ImpliedTask(task_id))
        _apply(task, seq, kind, actor, data)
    return result


def _apply(task: ImpliedTask, seq: int, kind: str, actor: str, data: Mapping[str, Any]) -> None:
    def put(name: str, value: Any) -> None:
        task.set(name, value, seq, kind)

    if kind == "task.created":
        task.created = True
        for name in ("title", "priority", "paths", "status", "max_attempts"):
            if name in data:
                put(name, data[name])
        put("depends_on", sorted(set(data.get("depends_on", []))))
        put("lease_epoch", 0)
        put("lease_holder", None)
        put("approval", None)
        put("result", None)
        put("evidence", None)
        return
    if kind in _STATUS_OF:
        put("status", _STATUS_OF[kind])
    if kind == "task.lease_expired" and "outcome" in data:
        put("status", data["outcome"])
    elif kind == "task.claimed":
        if "epoch" in data:
            put("lease_epoch", data["epoch"])
        put("lease_holder", actor)
    elif kind in ("task.completed", "task.integrated"):
        if "result" in data:
            put("result", data["result"])
        else:
            task.values.pop("result", None)
        if "evidence_digest" in data:
            put("evidence", data["evidence_digest"])
        else:
            task.values.pop("evidence", None)  # an older row: the evidence is unknown from here
    elif kind == "task.retried":
        put("result", None)
    elif kind == "task.awaiting_approval":
        put("approval", "pending")
    elif kind == "task.approved":
        put("approval", "approved")
    elif kind == "task.rejected":
        put("approval", "rejected")
    elif kind == "task.edited":
        for name in ("title", "priority", "paths", "depends_on"):
            if name in data:
                put(name, sorted(set(data[name])) if name == "depends_on" else data[name])
    elif kind in ("task.linked", "task.unlinked") and "depends_on" in task.values:
        current = set(task.values["depends_on"])
        change = set(data.get("depends_on", []))
        put("depends_on", sorted(current | change if kind == "task.linked" else current - change))


@dataclass(frozen=True)
class Difference:
    """The first place where the state and the chain disagree."""

    problem: str
    task_id: int | None = None
    decision: str | None = None
    seq: int | None = None


def compare_tasks(
    implied: Replay, actual: Mapping[int, Mapping[str, Any]]
) -> tuple[Difference | None, int]:
    """Compare every task row (``FIELDS``, ``evidence`` as its digest) with what the chain
    implies; returns the first difference (tasks in id order) and how many tasks differ.
    Counts, in ``implied.unknown``, the fields the chain could not vouch for."""
    first: Difference | None = None
    count = 0
    for task_id in sorted(set(implied.tasks) | set(actual)):
        found = _task_difference(implied, task_id, actual.get(task_id))
        if found is not None:
            count += 1
            first = first or found
    return first, count


def _task_difference(
    implied: Replay, task_id: int, row: Mapping[str, Any] | None
) -> Difference | None:
    task = implied.tasks.get(task_id)
    if row is None:
        return Difference(
            f"task {task_id} is in the audit log but not in the tasks table: it was deleted",
            task_id=task_id,
        )
    if task is None or not task.created:
        return Difference(
            f"task {task_id} ({row.get('title')!r}) has no task.created row in the audit log: "
            "it was inserted outside aictl",
            task_id=task_id,
        )
    for name in FIELDS:
        if name not in task.values:
            implied.unknown[name] = implied.unknown.get(name, 0) + 1
            continue
        expected, stored = task.values[name], row.get(name)
        if expected != stored:
            seq, kind = task.rows[name]
            shown = "a different value" if name in ("evidence", "result") else repr(stored)
            wanted = "" if name in ("evidence", "result") else f" ({expected!r})"
            return Difference(
                f"task {task_id} has {name} {shown} but the audit log (row {seq}, {kind}) "
                f"implies{wanted} otherwise: the tasks table was changed outside aictl",
                task_id=task_id,
                seq=seq,
            )
    return None


@dataclass(frozen=True)
class StoredDecision:
    """A decision record as read back: its digest and the fields older audit rows carry."""

    digest: str
    action: str
    subject: str
    task_id: int | None
    effect: str
    rules: Sequence[Any]
    policy_hash: str


def compare_decisions(
    events: Iterable[tuple[int, str, int | None, Mapping[str, Any]]],
    stored: Mapping[str, StoredDecision],
) -> tuple[Difference | None, int, int]:
    """Compare each ``policy.decision`` row ``(seq, actor, task_id, data)`` with its record.

    A row with a ``digest`` vouches for the whole record; an older one for its action, effect,
    rule ids, policy hash, subject and task. Returns the first difference (in chain order,
    then records no row mentions), how many records differ, and how many were checked only
    in part (older rows).
    """
    first: Difference | None = None
    count = partial = 0
    seen: set[str] = set()
    for seq, actor, task_id, data in events:
        name = str(data.get("decision"))
        seen.add(name)
        record = stored.get(name)
        problem: str | None = None
        if record is None:
            problem = f"decision {name} (row {seq}) is missing from the decision records"
        elif "digest" in data:
            if data["digest"] != record.digest:
                problem = (
                    f"decision {name} differs from its audit row {seq} (digest mismatch; "
                    f"its effect is now {record.effect!r}): it was changed outside aictl"
                )
        else:
            partial += 1
            carried = {
                "action": data.get("action"),
                "effect": data.get("effect"),
                "policy_hash": data.get("policy_hash"),
                "subject": actor,
                "task_id": task_id,
                "rules": data.get("rules"),
            }
            held = {
                "action": record.action,
                "effect": record.effect,
                "policy_hash": record.policy_hash,
                "subject": record.subject,
                "task_id": record.task_id,
                "rules": [
                    rule.get("id") if isinstance(rule, Mapping) else None for rule in record.rules
                ],
            }
            for key, value in carried.items():
                if value is not None and value != held[key]:
                    problem = (
                        f"decision {name} has {key} {held[key]!r} but its audit row {seq} "
                        f"says {value!r}: it was changed outside aictl"
                    )
                    break
        if problem is not None:
            count += 1
            first = first or Difference(problem, decision=name, seq=seq)
    for name in sorted(set(stored) - seen):
        count += 1
        first = first or Difference(
            f"decision {name} is not in the audit log: it was inserted outside aictl",
            decision=name,
        )
    return first, count, partial


def compare_comments(
    events: Iterable[tuple[int, str, int | None, Mapping[str, Any]]],
    stored: Mapping[int, tuple[int, str, str]],
) -> tuple[Difference | None, int]:
    """Compare each ``task.commented`` row ``(seq, actor, task_id, data)`` with the comment it
    names (``stored``: id to task, author, body); a comment no row mentions was inserted
    outside aictl. Returns the first difference and how many comments differ."""
    first: Difference | None = None
    count = 0
    seen: set[int] = set()
    for seq, actor, task_id, data in events:
        comment_id = data.get("comment")
        if not isinstance(comment_id, int):
            continue
        seen.add(comment_id)
        found = stored.get(comment_id)
        problem = None
        if found is None:
            problem = f"comment {comment_id} (row {seq}) is missing from the task comments"
        elif found != (task_id, actor, data.get("body")):
            problem = (
                f"comment {comment_id} differs from its audit row {seq}: it was changed "
                "outside aictl"
            )
        if problem is not None:
            count += 1
            first = first or Difference(problem, task_id=task_id, seq=seq)
    for comment_id in sorted(set(stored) - seen):
        count += 1
        first = first or Difference(
            f"comment {comment_id} is not in the audit log: it was inserted outside aictl",
            task_id=stored[comment_id][0],
        )
    return first, count
