"""Editing tasks before they are claimed, commenting on them, and importing many at once.

Each function validates its whole request with the same rules as ``task create`` (texts,
priority range, globs confined to the repository, labels), then makes one store call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aictl.domain.imports import Imported, ImportProblem, parse
from aictl.domain.tasks import Task, check_text
from aictl.errors import InvalidInput
from aictl.services.tasks import PRIORITY_RANGE, TaskService
from aictl.store import task_edits
from aictl.store.decisions import Ruling
from aictl.store.task_edits import BatchTask, Comment, Edit

MAX_COMMENT = 20_000
"""Longest comment, in characters: a note, not a log (logs belong in the run's evidence)."""
MAX_IMPORT_BYTES = 64 << 20
"""Largest file ``task import`` reads (64 MiB: a few hundred thousand tasks)."""


def edit_task(
    service: TaskService,
    task_id: int,
    *,
    title: str | None = None,
    description: str | None = None,
    priority: int | None = None,
    paths: Sequence[str] | None = None,
    labels: Sequence[str] = (),
    depends_on: Sequence[int] = (),
    remove_dependencies: Sequence[int] = (),
) -> Task:
    """Change a queued or blocked task. ``paths`` replaces the globs (``[]`` clears them);
    ``labels`` are ``KEY=VALUE`` (set) or ``KEY-`` (remove); ``depends_on`` adds and
    ``remove_dependencies`` removes dependencies. Raises ``InvalidInput`` when nothing would
    change; see :func:`aictl.store.task_edits.edit` for the rest."""
    from aictl.services.ais import apply_label_changes

    store = service.store
    current = store.get(task_id)
    task_edits.editable(current)  # before validating, so the status is the error named
    new_labels = apply_label_changes(current.labels, labels) if labels else None
    if title is not None and not check_text(title, "title").strip():
        raise InvalidInput("a task needs a title")
    if description is not None:
        check_text(description, "description")
    if priority is not None:
        low, high = PRIORITY_RANGE
        if not low <= priority <= high:
            raise InvalidInput(
                f"invalid --priority {priority}: must be between {low:,} and {high:,}"
            )
    change = Edit(
        title=title.strip() if title is not None else None,
        description=description,
        priority=priority,
        paths=service.normalise_globs(paths) if paths is not None else None,
        labels=new_labels,
        add_dependencies=list(dict.fromkeys(depends_on)),
        remove_dependencies=list(dict.fromkeys(remove_dependencies)),
    )
    if not change.columns() and not change.add_dependencies and not change.remove_dependencies:
        raise InvalidInput(
            f"nothing to change in task {task_id}",
            hint="pass --title, --description, --priority, --path, --label or --depends-on",
        )

    def decide(draft: Task) -> Ruling:
        return service.enforcer.ruling("create", subject=store.actor, task=draft)

    return task_edits.edit(store, task_id, change, decide)


def comment(service: TaskService, task_id: int, text: str) -> Comment:
    """Append ``text`` to the task's comments, by the actor (``AICTL_ACTOR``, else the user)."""
    body = check_text(text, "comment").strip()
    if not body:
        raise InvalidInput("a comment needs text", hint='aictl task comment 12 "Waiting on #3"')
    if len(body) > MAX_COMMENT:
        raise InvalidInput(f"a comment is at most {MAX_COMMENT:,} characters, got {len(body):,}")
    return task_edits.add_comment(service.store, task_id, service.store.actor, body)


def comments(service: TaskService, task_id: int) -> list[Comment]:
    return task_edits.comments(service.store, task_id)


@dataclass(frozen=True)
class ImportPlan:
    """What an import creates (in order), or created: ``tasks`` are the created tasks (empty
    for a dry run), ``refs`` the file's id of each, ``format`` the format read."""

    format: str
    entries: list[Imported]
    tasks: list[Task]

    def to_dict(self, *, dry_run: bool) -> dict[str, Any]:
        rows = []
        for index, entry in enumerate(self.entries):
            row: dict[str, Any] = {"ref": entry.ref, "title": entry.title, "where": entry.where}
            row["depends_on"] = list(entry.depends_on)
            if self.tasks:
                row["id"] = self.tasks[index].id
                row["status"] = str(self.tasks[index].status)
            rows.append(row)
        return {"format": self.format, "dry_run": dry_run, "count": len(rows), "tasks": rows}


def import_file(
    service: TaskService, path: Path, *, format: str | None = None, dry_run: bool = False
) -> ImportPlan:
    """Read ``path``, validate every task (as ``task create`` would, policy included), then
    create them all in one transaction, or none. With ``dry_run`` nothing is written (not
    even the policy's decision records; a denial is still raised, ``PolicyDenied``). Raises
    ``ImportProblem`` naming the file, the line or entry, and the field."""
    from aictl.domain.imports import detect

    text = _read(path)
    chosen = format or detect(str(path), text)
    entries = parse(text, name=str(path), format=chosen)
    position = {entry.ref: index for index, entry in enumerate(entries)}
    max_attempts = service.enforcer.policy(None).setting("max_attempts", 3)
    batch = []
    for entry in entries:
        try:
            spec = service.new_task(entry.title, max_attempts=max_attempts, **entry.fields())
        except InvalidInput as error:
            raise ImportProblem(f"{entry.where}: {error.message}", hint=error.hint) from None
        after = [position[dep] for dep in entry.depends_on]
        draft = service.draft(spec)
        ruling = service.enforcer.ruling("create", subject=service.store.actor, task=draft)
        batch.append(BatchTask(spec, after, ruling, entry.where))
    if dry_run:
        refusal = task_edits.denial(
            batch, "nothing would be imported (a dry run records no decision)"
        )
        if refusal is not None:
            raise refusal
        return ImportPlan(chosen, entries, [])
    return ImportPlan(chosen, entries, task_edits.create_batch(service.store, batch))


def _read(path: Path) -> str:
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_IMPORT_BYTES + 1)
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror or error}") from None
    if len(raw) > MAX_IMPORT_BYTES:
        raise ImportProblem(f"{path}: larger than {MAX_IMPORT_BYTES >> 20} MiB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ImportProblem(f"{path.name}:{line}: not UTF-8 text ({error.reason})") from None
