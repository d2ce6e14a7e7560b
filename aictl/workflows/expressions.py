"""Workflow expressions: ``when`` and ``until`` conditions and the ``{{ }}`` holes of templates.

They are CEL, compiled by the same engine as policy conditions (:func:`aictl.policy.celbinding.
cel`), with the same helper functions (``touches``, ``within``, ``covers``, ``get``), but over
a workflow's variables instead of a policy request:

- ``inputs.NAME``: the run's inputs (declared names only);
- ``steps.ID.FIELD``: an earlier step's outcome (:data:`STEP_FIELDS`); every step of the file
  is present, a step that has not run yet with ``status == "pending"``;
- ``iteration``: the loop's round, from 1, inside a loop (its steps and its ``until``; CEL
  reserves the word ``loop``);
- ``run.id`` and ``run.workflow``.

The library has no type checker, so, as for policy conditions, references are checked at load
time: unknown variables, functions, inputs, step ids and step fields are reported with the
line of the expression. A condition must give true or false; anything else, or an error at run
time, is reported as the step's failure (fail closed), never read as false.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from aictl.domain.suggest import did_you_mean
from aictl.policy.celbinding import cel, compile_program, panics_as_errors
from aictl.policy.celtext import Scanned, scan_within_bounds
from aictl.policy.conditions import BUILTIN_FUNCTIONS, _comprehension_variables, _syntax_problem
from aictl.policy.functions import FUNCTIONS
from aictl.workflows.definition import Expression, Template

VARIABLES = ("inputs", "steps", "iteration", "run")
STEP_FIELDS: Mapping[str, str] = {
    "status": "pending, running, waiting, done, failed, skipped or cancelled",
    "tests": "the test command's verdict: passed, failed, not run, not configured, or ''",
    "tests_output": "the last lines of the test command's output",
    "files_changed": "the paths the step's run changed",
    "attempts": "how many times the step's task was run",
    "reason": "why the step failed or was skipped",
    "task": "the id of the step's task (0 before it has one)",
    "iteration": "the loop round this record is from (loops: rounds run so far)",
}
RUN_FIELDS = ("id", "workflow")

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_STEP_REF = re.compile(
    rf"(?<![\w.])steps\s*\.\s*(?P<step>{_IDENT})(?:\s*\.\s*(?P<field>{_IDENT}))?"
)
_INDEXED_STEP = re.compile(r"(?<![\w.])steps\s*\[\s*\Z")
_SIMPLE_REF = re.compile(r"(?<![\w.])(?P<var>inputs|run)\s*\.\s*(?P<field>[A-Za-z_]\w*)")
_HOLE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


class Scope:
    """What an expression may name: the declared inputs, the step ids, whether ``iteration``
    is available (inside a loop)."""

    def __init__(self, inputs: Sequence[str], steps: Sequence[str], *, in_loop: bool) -> None:
        self.inputs = tuple(inputs)
        self.steps = tuple(steps)
        self.in_loop = in_loop


def compile_expression(
    source: str, scope: Scope
) -> tuple[Expression | None, list[tuple[int, str]]]:
    """The compiled expression, or None, and every problem as (line within it, message)."""
    scanned = scan_within_bounds(source)
    if not isinstance(scanned, Scanned):
        return None, [scanned]
    try:
        program = compile_program(source)
    except ValueError as error:
        return None, [_syntax_problem(str(error))]
    problems: list[tuple[int, str]] = []
    blank = scanned.blank
    comprehension = _comprehension_variables(blank)
    references = program.references()
    valid = set(VARIABLES) if scope.in_loop else set(VARIABLES) - {"iteration"}

    def line_at(position: int) -> int:
        return source.count("\n", 0, position) + 1

    for name in sorted(set(references["variables"]) - valid - comprehension):
        where = re.search(rf"(?<![\w.]){re.escape(name)}\b", blank)
        if name == "iteration":
            message = "'iteration' is only defined inside a loop (its steps and its until)"
        else:
            message = f"unknown variable {name!r}; valid variables: {', '.join(sorted(valid))}"
        problems.append((line_at(where.start() if where else 0), message))
    known = BUILTIN_FUNCTIONS | set(FUNCTIONS)
    for name in sorted(references["functions"]):
        if name[0] in "_@!-" or name in known:
            continue
        where = re.search(rf"\b{re.escape(name)}\s*\(", blank)
        problems.append(
            (
                line_at(where.start() if where else 0),
                f"unknown function {name!r}; workflows add {', '.join(FUNCTIONS)} to CEL's",
            )
        )
    reads: list[str] = []
    for match in _STEP_REF.finditer(blank):
        if "steps" in comprehension:
            break
        step, name = match["step"], match["field"]
        if step not in scope.steps:
            known_steps = ", ".join(scope.steps)
            problems.append(
                (line_at(match.start()), f"unknown step {step!r}; steps: {known_steps}")
            )
            continue
        if name is not None and name not in STEP_FIELDS:
            problems.append(
                (
                    line_at(match.start("field")),
                    f"unknown field {name!r} of steps.{step}; {did_you_mean(name, STEP_FIELDS)}"
                    "valid fields: " + ", ".join(STEP_FIELDS),
                )
            )
            continue
        reads.append(f"steps.{step}.{name}" if name else f"steps.{step}")
    for literal in scanned.literals:
        if _INDEXED_STEP.search(blank, 0, literal.start) and literal.value not in scope.steps:
            problems.append((line_at(literal.start), f"unknown step {literal.value!r}"))
    fields = {"inputs": scope.inputs, "run": RUN_FIELDS}
    for match in _SIMPLE_REF.finditer(blank):
        variable, name = match["var"], match["field"]
        if variable in comprehension:
            continue
        if name not in fields[variable]:
            what = "input" if variable == "inputs" else f"field of {variable}"
            choices = ", ".join(fields[variable]) or "none are declared"
            problems.append(
                (line_at(match.start("field")), f"unknown {what} {name!r}; valid: {choices}")
            )
            continue
        reads.append(f"{variable}.{name}")
    if problems:
        return None, problems
    return Expression(source, program, tuple(dict.fromkeys(reads))), []


def compile_template(text: str, scope: Scope) -> tuple[Template | None, list[tuple[int, str]]]:
    """Split ``text`` at its ``{{ }}`` holes and compile each; problems as for expressions,
    with lines counted in the whole text."""
    parts: list[str | Expression] = []
    problems: list[tuple[int, str]] = []
    position = 0
    for match in _HOLE.finditer(text):
        if match.start() > position:
            parts.append(text[position : match.start()])
        inner = match[1].strip()
        base = text.count("\n", 0, match.start())
        if not inner:
            problems.append((base + 1, "an empty {{ }} in a template"))
        else:
            expression, found = compile_expression(inner, scope)
            problems.extend((base + line, message) for line, message in found)
            if expression is not None:
                parts.append(expression)
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    if problems:
        return None, problems
    return Template(text, tuple(parts)), []


# ----------------------------------------------------------------------------- evaluation


def _context(variables: Mapping[str, Any]) -> Any:
    return cel().Context(variables=dict(variables), functions=dict(FUNCTIONS))


class ExpressionError(Exception):
    """An expression failed at run time, or a condition gave something other than a bool."""


def evaluate(expression: Expression, variables: Mapping[str, Any]) -> Any:
    try:
        with panics_as_errors():
            return expression.program.execute(_context(variables))
    except Exception as error:
        text = str(error).strip() or type(error).__name__
        raise ExpressionError(f"{expression.source!r}: {text[:300]}") from None


def condition(expression: Expression, variables: Mapping[str, Any]) -> bool:
    value = evaluate(expression, variables)
    if not isinstance(value, bool):
        raise ExpressionError(f"{expression.source!r} gave {value!r}, not true or false")
    return value


def render(template: Template, variables: Mapping[str, Any]) -> str:
    out = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = evaluate(part, variables)
        if isinstance(value, list):
            out.append("\n".join(str(item) for item in value))
        elif isinstance(value, bool):
            out.append("true" if value else "false")
        else:
            out.append(str(value))
    return "".join(out)


def values_read(expression: Expression, variables: Mapping[str, Any]) -> dict[str, Any]:
    """The value of every path the expression reads (what decided it), for the record."""
    found: dict[str, Any] = {}
    for path in expression.reads:
        value: Any = variables
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str) and len(value) > 500:
            value = value[:497] + "..."
        found[path] = value
    return found
