"""Text renderings of the dependency graph: tree, Mermaid, Graphviz dot, JSON."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from aictl.cli import output
from aictl.domain.tasks import Task
from aictl.services.tasks import Dependencies


def _label(task: Task) -> str:
    return f"{task.id} {task.title} [{task.status}]"


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def render(
    tasks: Sequence[Task], edges: Sequence[tuple[int, int]], layers: list[list[int]], fmt: str
) -> None:
    by_id = {task.id: task for task in tasks}
    if fmt == "json":
        output.emit_json(
            {
                "tasks": [{"id": t.id, "title": t.title, "status": str(t.status)} for t in tasks],
                "edges": [{"task_id": a, "depends_on": b} for a, b in edges],
                "layers": layers,
            }
        )
    elif fmt == "quiet":
        for layer in layers:
            for task_id in layer:
                output.line(str(task_id))
    elif fmt == "mermaid":
        output.line("graph TD")
        for task in tasks:
            output.line(f'  t{task.id}["{_quote(_label(task))}"]')
        for task_id, dep in edges:
            output.line(f"  t{dep} --> t{task_id}")
    elif fmt == "dot":
        output.line("digraph tasks {")
        output.line("  rankdir=LR;")
        for task in tasks:
            output.line(f'  t{task.id} [label="{_quote(_label(task))}"];')
        for task_id, dep in edges:
            output.line(f"  t{dep} -> t{task_id};")
        output.line("}")
    else:
        if not tasks:
            output.note("no tasks")
        waits: dict[int, list[int]] = defaultdict(list)
        for task_id, dep in edges:
            waits[task_id].append(dep)
        for depth, layer in enumerate(layers):
            output.line(f"layer {depth}")
            for task_id in layer:
                after = (
                    f"  <- {', '.join(map(str, sorted(waits[task_id])))}" if waits[task_id] else ""
                )
                output.line(f"  {_label(by_id[task_id])}{after}")


def _tree(
    root: int, edges: Sequence[tuple[int, int]], tasks: dict[int, Task], upward: bool
) -> list[str]:
    children: dict[int, list[int]] = defaultdict(list)
    for task_id, dep in edges:
        if upward:
            children[task_id].append(dep)
        else:
            children[dep].append(task_id)
    lines: list[str] = []

    def walk(node: int, prefix: str, seen: frozenset[int]) -> None:
        kids = sorted(children[node])
        for index, kid in enumerate(kids):
            last = index == len(kids) - 1
            lines.append(f"{prefix}{'└── ' if last else '├── '}{_label(tasks[kid])}")
            if kid not in seen:
                walk(kid, prefix + ("    " if last else "│   "), seen | {kid})

    walk(root, "", frozenset({root}))
    return lines


def dependencies(found: Dependencies, fmt: output.Format) -> None:
    task = found.task
    if fmt is output.Format.QUIET:
        waited_on = [dep for _, dep in found.up]
        waiting = [task_id for task_id, _ in found.down]
        for task_id in dict.fromkeys(waited_on + waiting):
            output.line(str(task_id))
        return
    if fmt is output.Format.JSON:
        output.emit_json(
            {
                "task": task.to_dict(),
                "upstream": [{"task_id": a, "depends_on": b} for a, b in found.up],
                "downstream": [{"task_id": a, "depends_on": b} for a, b in found.down],
                "tasks": {
                    str(t.id): {"title": t.title, "status": str(t.status)}
                    for t in found.tasks.values()
                },
            }
        )
        return
    output.line(_label(task))
    output.line("waits on:" if found.up else "waits on: nothing")
    for text in _tree(task.id, found.up, found.tasks, upward=True):
        output.line("  " + text)
    output.line("needed by:" if found.down else "needed by: nothing")
    for text in _tree(task.id, found.down, found.tasks, upward=False):
        output.line("  " + text)
