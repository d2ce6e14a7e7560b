"""Reading a file of tasks to import: aictl's own YAML/JSON, a Taskmaster ``tasks.json`` and a
beads ``issues.jsonl``, into one list of :class:`Imported` tasks in creation order.

Pure: text in, values out. Every problem names the file, where in it (a line, or an entry for
JSON, which keeps no lines per entry) and the field, and nothing is created when there is one:
the service validates every task first and the store writes them in one transaction.

Dependencies name other entries of the same file by their ``id`` (``ref`` here); the tasks are
returned so that every task comes after the ones it depends on, and a cycle is refused with
its members named. Formats (documented in docs/tasks.md):

- ``aictl``: ``{tasks: [{id, title, description, type, priority, paths, labels, requires,
  depends_on}]}``, in YAML or JSON;
- ``taskmaster``: ``{tasks: [...]}`` or tagged ``{master: {tasks: [...]}}``; a subtask ``S`` of
  task ``P`` becomes task ``P.S`` and ``P`` depends on its subtasks; done and cancelled tasks
  are left out (dependencies on them count as met);
- ``beads``: one issue per line; ``blocks`` dependencies are kept (other kinds relate issues
  without ordering them); closed and tombstone issues are left out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aictl.domain.suggest import did_you_mean
from aictl.errors import InvalidInput

FORMATS = ("aictl", "taskmaster", "beads")
TASKMASTER_PRIORITY = {"high": 2, "medium": 1, "low": 0}
"""Taskmaster's words as aictl priorities (higher runs first)."""
BEADS_LOWEST = 4
"""Beads counts P0 (most urgent) to P4: aictl's priority is ``4 - P``, so P0 runs first."""
_FINISHED = {"taskmaster": {"done", "cancelled"}, "beads": {"closed", "tombstone"}}


class ImportProblem(InvalidInput):
    """A file that cannot be imported: the message names the file, the line or entry, and
    the field. Exit 2; nothing was created."""


@dataclass(frozen=True)
class Imported:
    """One task to create. ``where`` says where it came from (``tasks.yaml:12``,
    ``tasks.json entry 3``); ``depends_on`` are refs of other imported tasks."""

    ref: str
    where: str
    title: str
    description: str = ""
    type: str = "task"
    priority: int = 0
    paths: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = field(default=())

    def fields(self) -> dict[str, Any]:
        """The keywords of ``TaskService.new_task`` (dependencies apart: they are refs)."""
        return {
            "description": self.description,
            "type": self.type,
            "priority": self.priority,
            "paths": list(self.paths),
            "labels": list(self.labels),
            "requires": list(self.requires),
        }


def detect(name: str, text: str) -> str:
    """The format of a file: ``.jsonl`` is beads; JSON whose tasks carry ``subtasks``,
    ``testStrategy`` or ``details``, or a tagged ``{master: ...}``, is Taskmaster; else aictl."""
    if name.endswith(".jsonl"):
        return "beads"
    if name.endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError:
            return "aictl"  # the aictl reader names the syntax error
        tasks = _taskmaster_tasks(data)
        if isinstance(data, dict) and "tasks" not in data and tasks is not None:
            return "taskmaster"
        marks = ("subtasks", "testStrategy", "details")
        if tasks and any(isinstance(t, dict) and any(m in t for m in marks) for t in tasks):
            return "taskmaster"
    return "aictl"


def parse(text: str, *, name: str, format: str | None = None) -> list[Imported]:
    """The tasks of a file in creation order (dependencies first). ``format`` None detects it.
    Raises ``ImportProblem`` naming the first problem (or ``InvalidInput`` for an unknown
    format)."""
    chosen = format or detect(name, text)
    readers: dict[str, Callable[[str, str], list[Imported]]] = {
        "aictl": _read_aictl,
        "taskmaster": _read_taskmaster,
        "beads": _read_beads,
    }
    if chosen not in readers:
        raise InvalidInput(
            f"unknown import format {chosen!r}", hint="one of: " + ", ".join(FORMATS)
        )
    tasks = readers[chosen](text, name)
    if not tasks:
        raise ImportProblem(f"{name}: no tasks to import", hint="see docs/tasks.md for the formats")
    return ordered(tasks, name)


def ordered(tasks: Sequence[Imported], name: str) -> list[Imported]:
    """``tasks`` with each after its dependencies (file order otherwise kept). Raises
    ``ImportProblem`` for a duplicate ref, a dependency on no entry, or a cycle (named)."""
    by_ref: dict[str, Imported] = {}
    for task in tasks:
        if task.ref in by_ref:
            raise ImportProblem(
                f"{task.where}: id {task.ref!r} is used twice (first at {by_ref[task.ref].where})"
            )
        by_ref[task.ref] = task
    for task in tasks:
        for dep in task.depends_on:
            if dep not in by_ref:
                raise ImportProblem(
                    f"{task.where}: depends_on names {dep!r}, which is no task of {name}",
                    hint="dependencies name the id of another task in the same file",
                )
    result: list[Imported] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: placed
    for task in tasks:
        _place(task, by_ref, state, result, [], name)
    return result


def _place(
    task: Imported,
    by_ref: Mapping[str, Imported],
    state: dict[str, int],
    result: list[Imported],
    path: list[str],
    name: str,
) -> None:
    """Depth-first placement, iterative over a task's dependencies but recursive in depth;
    the path on the stack names a cycle when one closes."""
    stack: list[tuple[Imported, int]] = [(task, 0)]
    while stack:
        current, index = stack.pop()
        if index == 0:
            if state.get(current.ref) == 2:
                continue
            state[current.ref] = 1
            path.append(current.ref)
        if index < len(current.depends_on):
            stack.append((current, index + 1))
            dep = current.depends_on[index]
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep]
                raise ImportProblem(
                    f"{name}: dependency cycle: " + " -> ".join(cycle) + "; nothing was imported",
                    hint="remove one of these dependencies",
                )
            if state.get(dep) != 2:
                stack.append((by_ref[dep], 0))
            continue
        state[current.ref] = 2
        path.pop()
        result.append(current)


# ------------------------------------------------------------------ aictl's own format


_AICTL_FIELDS = (
    "id",
    "title",
    "description",
    "type",
    "priority",
    "paths",
    "labels",
    "requires",
    "depends_on",
)


def _read_aictl(text: str, name: str) -> list[Imported]:
    if name.endswith(".json"):
        data = _json(text, name)
        line_of: Callable[[int], str] = lambda index: f"{name} entry {index + 1}"  # noqa: E731
    else:
        from aictl.policy.source import parse as parse_yaml

        parsed = parse_yaml(text)
        if parsed.problems:
            problem = parsed.problems[0]
            raise ImportProblem(f"{name}:{problem.line}: {problem.message}")
        data = parsed.data
        lines = parsed.lines
        line_of = lambda index: f"{name}:{lines.line_of(('tasks', index))}"  # noqa: E731
    if isinstance(data, list):
        data = {"tasks": data}
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise ImportProblem(
            f"{name}: expected a mapping with a `tasks:` list", hint="see docs/tasks.md"
        )
    unknown = sorted(set(data) - {"version", "tasks"})
    if unknown:
        raise ImportProblem(f"{name}: unknown top-level field {unknown[0]!r}")
    tasks = []
    for index, entry in enumerate(data["tasks"]):
        where = line_of(index)
        if not isinstance(entry, dict):
            raise ImportProblem(f"{where}: a task is a mapping with at least a title")
        extra = sorted(set(entry) - set(_AICTL_FIELDS))
        if extra:
            raise ImportProblem(
                f"{where}: unknown field {extra[0]!r}",
                hint=did_you_mean(extra[0], _AICTL_FIELDS) + "fields: " + ", ".join(_AICTL_FIELDS),
            )
        labels = entry.get("labels", {})
        if isinstance(labels, dict):
            labels = [f"{key}={value}" for key, value in labels.items()]
        tasks.append(
            Imported(
                ref=_ref(entry.get("id", f"#{index + 1}"), where, "id"),
                where=where,
                title=_text(entry.get("title"), where, "title", required=True),
                description=_text(entry.get("description", ""), where, "description"),
                type=_text(entry.get("type", "task"), where, "type"),
                priority=_integer(entry.get("priority", 0), where, "priority"),
                paths=_texts(entry.get("paths", []), where, "paths"),
                labels=_texts(labels, where, "labels"),
                requires=_texts(entry.get("requires", []), where, "requires"),
                depends_on=tuple(
                    _ref(dep, where, "depends_on") for dep in _list(entry, "depends_on", where)
                ),
            )
        )
    return tasks


# ------------------------------------------------------------------ Taskmaster


def _taskmaster_tasks(data: Any) -> list[Any] | None:
    """The task list of a plain (``{tasks}``) or tagged (``{master: {tasks}}``) file."""
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("tasks"), list):
        return list(data["tasks"])
    tagged = data.get("master")
    if isinstance(tagged, dict) and isinstance(tagged.get("tasks"), list):
        return list(tagged["tasks"])
    return None


def _read_taskmaster(text: str, name: str) -> list[Imported]:
    entries = _taskmaster_tasks(_json(text, name))
    if entries is None:
        raise ImportProblem(
            f"{name}: not a Taskmaster tasks.json: expected `tasks` or `master.tasks`"
        )
    finished: set[str] = set()
    found: list[Imported] = []
    for index, entry in enumerate(entries):
        where = f"{name} task entry {index + 1}"
        if not isinstance(entry, dict):
            raise ImportProblem(f"{where}: a task is an object")
        ref = _ref(entry.get("id"), where, "id")
        subtasks = entry.get("subtasks") or []
        if not isinstance(subtasks, list):
            raise ImportProblem(f"{where}: `subtasks` must be a list")
        children = []
        for sub_index, sub in enumerate(subtasks):
            sub_where = f"{where} subtask entry {sub_index + 1}"
            if not isinstance(sub, dict):
                raise ImportProblem(f"{sub_where}: a subtask is an object")
            sub_ref = f"{ref}.{_ref(sub.get('id'), sub_where, 'id')}"
            deps = [
                _subtask_dep(dep, ref, sub_where) for dep in _list(sub, "dependencies", sub_where)
            ]
            child = _taskmaster_task(sub, sub_ref, sub_where, deps, entry)
            if _status(sub, sub_where) in _FINISHED["taskmaster"]:
                finished.add(sub_ref)
            else:
                children.append(child.ref)
                found.append(child)
        deps = [_ref(dep, where, "dependencies") for dep in _list(entry, "dependencies", where)]
        if _status(entry, where) in _FINISHED["taskmaster"]:
            finished.add(ref)
            continue
        found.append(_taskmaster_task(entry, ref, where, [*deps, *children], None))
    return _without(found, finished)


def _taskmaster_task(
    entry: Mapping[str, Any],
    ref: str,
    where: str,
    deps: list[str],
    parent: Mapping[str, Any] | None,
) -> Imported:
    parts = [_text(entry.get("description", ""), where, "description")]
    for key, heading in (("details", "Details"), ("testStrategy", "Test strategy")):
        value = _text(entry.get(key, ""), where, key)
        if value.strip():
            parts.append(f"{heading}:\n{value}")
    word = entry.get("priority", (parent or {}).get("priority", "medium"))
    if word is None:
        word = "medium"
    if word not in TASKMASTER_PRIORITY:
        raise ImportProblem(
            f"{where}: priority {word!r} is not one of " + ", ".join(TASKMASTER_PRIORITY)
        )
    return Imported(
        ref=ref,
        where=where,
        title=_text(entry.get("title"), where, "title", required=True),
        description="\n\n".join(part for part in parts if part.strip()),
        priority=TASKMASTER_PRIORITY[word],
        labels=(f"imported=taskmaster:{ref}",),
        depends_on=tuple(dict.fromkeys(deps)),
    )


def _subtask_dep(value: Any, parent: str, where: str) -> str:
    """A subtask's dependency: ``N`` is sibling subtask N, ``"P.S"`` any subtask."""
    ref = _ref(value, where, "dependencies")
    return ref if "." in ref else f"{parent}.{ref}"


# ------------------------------------------------------------------ beads


def _read_beads(text: str, name: str) -> list[Imported]:
    finished: set[str] = set()
    found: list[Imported] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{name}:{number}"
        try:
            entry = json.loads(raw)
        except ValueError as error:
            raise ImportProblem(f"{where}: not a JSON object: {error}") from None
        if not isinstance(entry, dict):
            raise ImportProblem(f"{where}: not a JSON object")
        ref = _ref(entry.get("id"), where, "id")
        if _status(entry, where) in _FINISHED["beads"]:
            finished.add(ref)
            continue
        priority = entry.get("priority", 2)
        if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 4:
            raise ImportProblem(f"{where}: field priority must be 0 to 4, got {priority!r}")
        deps = []
        for index, dep in enumerate(_list(entry, "dependencies", where)):
            if not isinstance(dep, dict):
                raise ImportProblem(f"{where}: dependencies[{index}] must be an object")
            if dep.get("type", "blocks") == "blocks":
                deps.append(_ref(dep.get("depends_on_id"), where, f"dependencies[{index}]"))
        labels = [f"imported=beads:{ref}"]
        if entry.get("labels"):
            labels.append("beads.labels=" + ",".join(_texts(entry["labels"], where, "labels")))
        found.append(
            Imported(
                ref=ref,
                where=where,
                title=_text(entry.get("title"), where, "title", required=True),
                description=_text(entry.get("description") or "", where, "description"),
                type=_text(entry.get("issue_type") or "task", where, "issue_type"),
                priority=BEADS_LOWEST - priority,
                labels=tuple(labels),
                depends_on=tuple(dict.fromkeys(deps)),
            )
        )
    return _without(found, finished)


# ------------------------------------------------------------------ field readers


def _without(tasks: list[Imported], finished: set[str]) -> list[Imported]:
    """Drop dependencies on tasks left out as finished: they count as met."""
    return [
        replace(task, depends_on=tuple(d for d in task.depends_on if d not in finished))
        for task in tasks
    ]


def _json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ImportProblem(
            f"{name}:{error.lineno}:{error.colno}: not valid JSON: {error.msg}"
        ) from None


def _status(entry: Mapping[str, Any], where: str) -> str:
    status = entry.get("status", "")
    if status is None:
        return ""
    if not isinstance(status, str):
        raise ImportProblem(f"{where}: field status must be text, got {status!r}")
    return status


def _list(entry: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = entry.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ImportProblem(f"{where}: field {key} must be a list, got {type(value).__name__}")
    return value


def _text(value: Any, where: str, key: str, *, required: bool = False) -> str:
    if required and (not isinstance(value, str) or not value.strip()):
        raise ImportProblem(f"{where}: field {key} is required (non-empty text)")
    if not isinstance(value, str):
        raise ImportProblem(f"{where}: field {key} must be text, got {type(value).__name__}")
    return value


def _texts(value: Any, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ImportProblem(f"{where}: field {key} must be a list of text")
    return tuple(value)


def _integer(value: Any, where: str, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ImportProblem(f"{where}: field {key} must be a whole number, got {value!r}")
    return value


def _ref(value: Any, where: str, key: str) -> str:
    """An id as written (a number or text), as text: ``1`` and ``"1"`` name the same task."""
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value).strip() == "":
        raise ImportProblem(f"{where}: field {key} must be an id (a number or text), got {value!r}")
    return str(value).strip()
