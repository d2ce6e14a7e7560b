"""A validated workflow, as plain frozen values: what the engine and the scheduler read.

The loader (:mod:`aictl.workflows.loader`) builds these only from a file without errors, so
every step id named here exists, the graph has no cycle, every loop has a maximum and every
expression compiled. Compiled CEL programs ride along in :class:`Expression`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

ON_FAILURE = ("fail", "continue", "goto")


@dataclass(frozen=True)
class Expression:
    """A CEL expression with its source and the variable paths it reads (``steps.build.tests``),
    whose values are recorded when it decides something."""

    source: str
    program: Any = field(compare=False, repr=False)
    reads: tuple[str, ...] = ()


@dataclass(frozen=True)
class Template:
    """Text with ``{{ expression }}`` holes, filled when the step starts."""

    source: str
    parts: tuple[str | Expression, ...] = ()

    @property
    def constant(self) -> bool:
        return all(isinstance(part, str) for part in self.parts)


@dataclass(frozen=True)
class TaskTemplate:
    title: Template
    description: Template
    paths: tuple[Template, ...] = ()
    requires: tuple[str, ...] = ()
    labels: Mapping[str, Template] = field(default_factory=dict)
    ai: str | None = None
    priority: int = 0
    type: str = "task"
    skills: tuple[str, ...] = ()


@dataclass(frozen=True)
class Loop:
    until: Expression
    max: int
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Step:
    id: str
    line: int
    description: str = ""
    task: TaskTemplate | None = None
    loop: Loop | None = None
    needs: tuple[str, ...] = ()
    when: Expression | None = None
    retry_max: int = 0
    retry_backoff: float = 0.0
    on_failure: str = "fail"
    goto: str | None = None
    approval: bool = False
    approval_reason: str = ""
    parent: str | None = None
    """The id of the loop this step belongs to, or None at the top level."""


@dataclass(frozen=True)
class Input:
    name: str
    description: str = ""
    default: Any = None
    required: bool = False


@dataclass(frozen=True)
class Workflow:
    name: str
    description: str
    inputs: tuple[Input, ...]
    steps: tuple[Step, ...]
    source: str
    hash: str
    version: int = 1

    def all_steps(self) -> Iterator[Step]:
        """Every step, loop bodies included, in file order."""
        for step in self.steps:
            yield step
            if step.loop is not None:
                yield from step.loop.steps

    def step(self, step_id: str) -> Step:
        for step in self.all_steps():
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def group(self, parent: str | None) -> tuple[Step, ...]:
        """The steps of the top level (None) or of the loop ``parent``."""
        if parent is None:
            return self.steps
        loop = self.step(parent).loop
        assert loop is not None
        return loop.steps

    def summary(self) -> dict[str, Any]:
        def one(step: Step) -> dict[str, Any]:
            data: dict[str, Any] = {"id": step.id, "needs": list(step.needs)}
            if step.when:
                data["when"] = step.when.source
            if step.task:
                data["title"] = step.task.title.source
            if step.approval:
                data["approval"] = True
            if step.retry_max:
                data["retry"] = step.retry_max
            data["on_failure"] = f"goto {step.goto}" if step.goto else step.on_failure
            if step.loop:
                data["loop"] = {
                    "until": step.loop.until.source,
                    "max": step.loop.max,
                    "steps": [one(inner) for inner in step.loop.steps],
                }
            return data

        return {
            "name": self.name,
            "description": self.description,
            "hash": self.hash,
            "inputs": [
                {
                    "name": item.name,
                    "description": item.description,
                    "default": item.default,
                    "required": item.required,
                }
                for item in self.inputs
            ],
            "steps": [one(step) for step in self.steps],
        }
