"""Staged loading of a workflow file, every problem collected, as for policy files.

1. **YAML** (:func:`aictl.policy.source.parse`): safe composition with lines; duplicate keys
   and syntax errors reported with their lines.
2. **Structure**: a mapping with a supported ``version``; a file failing here stops.
3. **Schema** (:mod:`aictl.workflows.models`): strict pydantic, unknown fields named with the
   valid ones; a loop without ``max`` says so.
4. **Meaning**, run even when stage 3 found problems, on whatever is well-formed: duplicate step
   ids, ``needs`` naming an unknown step (or one outside the step's group), a cycle of
   ``needs``, a ``goto`` to an unknown step or to one the failing step needs, nested loops, a
   step with both or neither of ``task`` and ``loop``, and every condition and template
   compiled and checked (:mod:`aictl.workflows.expressions`).

Every problem is a :class:`~aictl.policy.issues.PolicyIssue` (file, line, field, message);
:func:`load` raises them together as :class:`InvalidWorkflow`.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aictl.domain.durations import parse_duration
from aictl.errors import InvalidInput
from aictl.policy.issues import ERROR, InvalidFiles, PolicyIssue
from aictl.policy.source import Lines, field_path
from aictl.workflows.definition import (
    Expression,
    Input,
    Loop,
    Step,
    TaskTemplate,
    Template,
    Workflow,
)
from aictl.workflows.expressions import Scope, compile_expression, compile_template

PathKey = tuple[str | int, ...]


class InvalidWorkflow(InvalidFiles):
    """A workflow file has errors; ``issues`` lists all of them (exit code 2)."""

    kind = "workflow"
    check = "fix the places named above; `aictl workflow create FILE` checks it again"


@dataclass
class Loaded:
    path: str
    workflow: Workflow | None = None
    issues: list[PolicyIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.workflow is not None


def load(path: Path, *, display: str | None = None) -> Workflow:
    """The workflow in ``path``; ``InvalidWorkflow`` with every problem otherwise."""
    loaded = load_file(path, display=display)
    if loaded.workflow is None:
        raise InvalidWorkflow(loaded.issues)
    return loaded.workflow


def load_file(path: Path, *, display: str | None = None) -> Loaded:
    name = display or str(path)
    from aictl.policy import source

    try:
        text = source.read_text(path)
    except source.Unreadable as problem:
        return Loaded(name, issues=[PolicyIssue(name, problem.line, "", problem.message)])
    return load_text(text, display=name)


def load_text(text: str, *, display: str) -> Loaded:
    from aictl.policy import source

    parsed, issues = source.parse_file(text, display=display, kind="workflow")
    result = Loaded(display, issues=issues)
    if parsed.data is None:
        return result
    data, lines = parsed.data, parsed.lines
    checker = _Checker(display, lines, result.issues)
    if not isinstance(data, dict):
        checker.issue((), "a workflow file is a mapping (version, name, inputs, steps)")
        return result
    if data.get("version") != 1 or isinstance(data.get("version"), bool):
        where = ("version",) if "version" in data else ()
        checker.issue(where, "missing or unsupported 'version'; this aictl reads `version: 1`")
        return result
    from aictl.workflows import models

    for schema_problem in models.validate(data):
        checker.issue(schema_problem.path, schema_problem.message)
    workflow = checker.meaning(data, text)
    if not any(issue.is_error for issue in result.issues) and workflow is not None:
        result.workflow = workflow
    result.issues.sort(key=lambda issue: (issue.line, issue.field))
    return result


class _Checker:
    """Stage 4: the checks across fields, building the definition as it goes."""

    def __init__(self, name: str, lines: Lines, issues: list[PolicyIssue]) -> None:
        self.name = name
        self.lines = lines
        self.issues = issues

    def issue(self, path: PathKey, message: str, line: int | None = None) -> None:
        self.issues.append(
            PolicyIssue(
                self.name,
                line if line is not None else self.lines.line_of(path),
                field_path(path),
                message,
                ERROR,
            )
        )

    def meaning(self, data: dict[str, Any], text: str) -> Workflow | None:
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list):
            return None
        raw_inputs = _mapping(data.get("inputs"))
        inputs = [str(name) for name in raw_inputs]
        groups = self._groups(raw_steps)
        every_id = [step_id for group in groups.values() for step_id, _, _ in group]
        top_ids = [step_id for step_id, _, _ in groups[None]]
        built: dict[str | None, list[Step]] = {}
        for parent, group in groups.items():
            built[parent] = self._group(parent, group, inputs, every_id, top_ids)
        steps = []
        for step in built[None]:
            if step.loop is None:
                steps.append(step)
                continue
            loop = Loop(step.loop.until, step.loop.max, tuple(built.get(step.id, [])))
            steps.append(_replace(step, loop=loop))
        if not isinstance(data.get("name"), str):
            return None
        return Workflow(
            name=data["name"],
            description=str(data.get("description") or ""),
            inputs=tuple(
                Input(
                    str(key),
                    str(value.get("description", "")) if isinstance(value, dict) else "",
                    value.get("default") if isinstance(value, dict) else None,
                    bool(value.get("required")) if isinstance(value, dict) else False,
                )
                for key, value in raw_inputs.items()
            ),
            steps=tuple(steps),
            source=text,
            hash=hashlib.sha256(text.encode()).hexdigest(),
        )

    def _groups(
        self, raw_steps: list[Any]
    ) -> dict[str | None, list[tuple[str, PathKey, dict[str, Any]]]]:
        """Steps by group (top level: None; a loop: its id), with duplicate ids reported."""
        groups: dict[str | None, list[tuple[str, PathKey, dict[str, Any]]]] = {None: []}
        first: dict[str, int] = {}

        def visit(items: list[Any], parent: str | None, base: PathKey) -> None:
            for index, raw in enumerate(items):
                path = (*base, index)
                if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
                    continue
                step_id = raw["id"]
                line = self.lines.line_of((*path, "id"))
                if step_id in first:
                    self.issue(
                        (*path, "id"),
                        f"duplicate step id {step_id!r} (first at line {first[step_id]})",
                    )
                    continue
                first[step_id] = line
                groups.setdefault(parent, []).append((step_id, path, raw))
                loop = raw.get("loop")
                if isinstance(loop, dict) and isinstance(loop.get("steps"), list):
                    if parent is not None:
                        self.issue((*path, "loop"), "loops do not nest: a loop's step is a task")
                        continue
                    groups.setdefault(step_id, [])
                    visit(loop["steps"], step_id, (*path, "loop", "steps"))

        visit(raw_steps, None, ("steps",))
        return groups

    def _group(
        self,
        parent: str | None,
        group: list[tuple[str, PathKey, dict[str, Any]]],
        inputs: list[str],
        every_id: list[str],
        top_ids: list[str],
    ) -> list[Step]:
        ids = [step_id for step_id, _, _ in group]
        needs: dict[str, list[str]] = {}
        steps: list[Step] = []
        scope = Scope(inputs, every_id, in_loop=parent is not None)
        for step_id, path, raw in group:
            needed = [item for item in raw.get("needs") or [] if isinstance(item, str)]
            for index, other in enumerate(needed):
                where = (*path, "needs", index)
                if other == step_id:
                    self.issue(where, f"step {step_id!r} cannot need itself")
                elif other not in ids:
                    if parent is not None and other in top_ids:
                        hint = (
                            "; a loop's steps need only each other: "
                            f"put it in the needs of {parent!r}"
                        )
                    elif parent is None and other in every_id:
                        hint = "; it is inside a loop: need the loop instead"
                    else:
                        hint = f"; steps here: {', '.join(ids)}"
                    self.issue(where, f"unknown step id {other!r} in needs{hint}")
            needs[step_id] = [other for other in needed if other in ids and other != step_id]
        self._cycles(group, needs)
        ancestors = _ancestors(needs)
        for step_id, path, raw in group:
            steps.append(self._step(step_id, path, raw, parent, scope, needs, ancestors, ids))
        return steps

    def _cycles(
        self, group: list[tuple[str, PathKey, dict[str, Any]]], needs: dict[str, list[str]]
    ) -> None:
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(needs)
        graph.add_edges_from((step, other) for step, others in needs.items() for other in others)
        paths = {step_id: path for step_id, path, _ in group}
        for component in nx.strongly_connected_components(graph):
            if len(component) < 2:
                continue
            cycle = [edge[0] for edge in nx.find_cycle(graph.subgraph(component))]
            first = min(cycle, key=lambda step: self.lines.line_of(paths[step]))
            start = cycle.index(first)
            walk = [*cycle[start:], *cycle[:start], first]
            self.issue(
                (*paths[first], "needs"),
                "a cycle of needs: " + " -> ".join(walk) + " (each needs the next)",
            )

    def _step(
        self,
        step_id: str,
        path: PathKey,
        raw: dict[str, Any],
        parent: str | None,
        scope: Scope,
        needs: dict[str, list[str]],
        ancestors: dict[str, set[str]],
        ids: list[str],
    ) -> Step:
        task, loop = raw.get("task"), raw.get("loop")
        if task is not None and loop is not None:
            self.issue(path, f"step {step_id!r} has both a task and a loop; give it one")
        elif task is None and loop is None:
            self.issue(path, f"step {step_id!r} needs a task (`task: {{title: ...}}`) or a loop")
        when = self._expression(raw.get("when"), (*path, "when"), scope)
        template = self._task(task, (*path, "task"), scope) if isinstance(task, dict) else None
        built_loop = None
        if isinstance(loop, dict):
            for word in ("approval", "retry"):
                if raw.get(word):
                    self.issue((*path, word), f"{word} applies to a task step, not to a loop")
            inner = Scope(scope.inputs, scope.steps, in_loop=True)
            until = self._expression(loop.get("until"), (*path, "loop", "until"), inner)
            maximum = loop.get("max")
            if until is not None and isinstance(maximum, int):
                built_loop = Loop(until, maximum, ())
        on_failure, goto = "fail", None
        raw_failure = raw.get("on_failure")
        if isinstance(raw_failure, str):
            on_failure = raw_failure
        elif isinstance(raw_failure, dict) and isinstance(raw_failure.get("goto"), str):
            on_failure, goto = "goto", raw_failure["goto"]
            where = (*path, "on_failure", "goto")
            if goto not in ids:
                self.issue(where, f"unknown step id {goto!r} in goto; steps here: {', '.join(ids)}")
            elif goto == step_id or goto in ancestors.get(step_id, set()):
                self.issue(
                    where,
                    f"goto {goto!r} would run a step that {step_id!r} needs (it has run "
                    "already); go forward, or use a loop to repeat steps",
                )
        retry = _mapping(raw.get("retry"))
        backoff = 0.0
        if retry.get("backoff") is not None:
            with contextlib.suppress(InvalidInput):  # reported by the schema stage
                backoff = parse_duration(str(retry["backoff"])).total_seconds()
        approval = raw.get("approval")
        return Step(
            id=step_id,
            line=self.lines.line_of(path),
            description=str(raw.get("description") or ""),
            task=template,
            loop=built_loop,
            needs=tuple(needs.get(step_id, [])),
            when=when,
            retry_max=int(retry.get("max") or 0) if isinstance(retry.get("max"), int) else 0,
            retry_backoff=backoff,
            on_failure=on_failure,
            goto=goto,
            approval=bool(approval),
            approval_reason=str(approval.get("reason", "")) if isinstance(approval, dict) else "",
            parent=parent,
        )

    def _expression(self, source: Any, path: PathKey, scope: Scope) -> Expression | None:
        if not isinstance(source, str) or not source.strip():
            return None
        compiled, problems = compile_expression(source, scope)
        self._report(problems, path)
        return compiled

    def _template(self, source: Any, path: PathKey, scope: Scope) -> Template | None:
        if not isinstance(source, str):
            return None
        compiled, problems = compile_template(source, scope)
        self._report(problems, path)
        return compiled

    def _report(self, problems: list[tuple[int, str]], path: PathKey) -> None:
        base = self.lines.line_of(path)
        block = path in self.lines.literal_blocks
        for offset, message in problems:
            self.issue(path, message, line=base + offset if block else base)

    def _task(self, raw: dict[str, Any], path: PathKey, scope: Scope) -> TaskTemplate | None:
        title = self._template(raw.get("title"), (*path, "title"), scope)
        description = self._template(raw.get("description", ""), (*path, "description"), scope)
        paths = [
            self._template(item, (*path, "paths", index), scope)
            for index, item in enumerate(raw.get("paths") or [])
        ]
        labels_raw = _mapping(raw.get("labels"))
        labels = {
            str(key): self._template(value, (*path, "labels", key), scope)
            for key, value in labels_raw.items()
        }
        if title is None or description is None or None in paths or None in labels.values():
            return None
        return TaskTemplate(
            title=title,
            description=description,
            paths=tuple(item for item in paths if item is not None),
            requires=tuple(str(item) for item in raw.get("requires") or []),
            labels={key: value for key, value in labels.items() if value is not None},
            ai=raw.get("ai") if isinstance(raw.get("ai"), str) else None,
            priority=priority if isinstance(priority := raw.get("priority"), int) else 0,
            type=kind if isinstance(kind := raw.get("type"), str) else "task",
            skills=tuple(str(item) for item in raw.get("skills") or []),
        )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _ancestors(needs: dict[str, list[str]]) -> dict[str, set[str]]:
    """Every step each step needs, directly or through others (cycles tolerated)."""
    found: dict[str, set[str]] = {}
    for start, direct in needs.items():
        seen: set[str] = set()
        stack = list(direct)
        while stack:
            step = stack.pop()
            if step in seen:
                continue
            seen.add(step)
            stack.extend(needs.get(step, []))
        found[start] = seen
    return found


def _replace(step: Step, **changes: Any) -> Step:
    from dataclasses import replace

    return replace(step, **changes)
