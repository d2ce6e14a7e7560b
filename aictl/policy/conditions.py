"""Stage 4 of loading: rule conditions compiled with CEL and checked against the request schema.

CEL is Google's Common Expression Language (Kubernetes admission policies, Envoy); the
implementation is the Rust-backed ``common-expression-language`` package, compiled once at load
and executed per decision in about a microsecond. That library has no type checker, so a
misspelt field (``task.prioritee``) would only surface as a ``KeyError`` when a request arrives.
:func:`compile_condition` closes that gap at load time:

1. syntax: ``cel.compile``; its error is reported with line and column;
2. references: every variable the program reads must be a request variable or a comprehension
   variable (``p`` in ``task.paths.exists(p, ...)``), every function a CEL built-in or one of
   :data:`aictl.policy.functions.FUNCTIONS`;
3. fields: every selection ``task.X``, ``ai.X``, ``tool.X`` (and ``task["X"]``, ``has(task.X)``)
   must name a field of that variable; maps with free keys (``task.labels``, ``ai.labels``,
   ``tool.input``, ``task.evidence``) accept anything below them;
4. glob literals passed to ``touches``, ``within`` and ``covers`` must be valid globs.

Steps 3 and 4 read the expression with its string literals and comments blanked out (a literal
may contain dots; see :mod:`aictl.policy.celtext`), recognising the few shapes above: a check
of references against the schema, not a second parser. What they find is kept as an
:class:`Analysis`, which the linter uses to build example requests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aictl.domain import globs
from aictl.domain.suggest import did_you_mean
from aictl.policy import vocabulary
from aictl.policy.celbinding import compile_program
from aictl.policy.celtext import Scanned, calls, literal_arguments, scan_within_bounds
from aictl.policy.functions import FUNCTIONS

BUILTIN_FUNCTIONS = frozenset(
    {
        "size",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "timestamp",
        "duration",
        "type",
        "dyn",
        "getFullYear",
        "getMonth",
        "getDayOfYear",
        "getDayOfMonth",
        "getDate",
        "getDayOfWeek",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
        "of",
        "ofNonZeroValue",
        "none",
        "hasValue",
        "value",
        "or",
        "orValue",
    }
)
"""Functions the CEL library provides natively (checked by a test against the library)."""

MACROS = ("all", "exists", "exists_one", "map", "filter")


# ----------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class Analysis:
    """What a condition refers to, for the linter's example requests."""

    fields: frozenset[tuple[str, str]] = frozenset()
    """``(variable, field)`` selections such as ``("task", "priority")``."""
    keys: frozenset[tuple[str, str, str]] = frozenset()
    """Keys selected below open maps: ``("task", "labels", "env")``."""
    globs: tuple[str, ...] = ()
    """Canonical glob literals passed to touches, within and covers."""
    regexes: tuple[str, ...] = ()
    """Literals passed to ``matches``."""
    strings: tuple[str, ...] = ()
    numbers: tuple[int | float, ...] = ()
    variables: frozenset[str] = frozenset()
    """Request variables the condition reads."""
    whole: frozenset[str] = frozenset()
    """Record variables (task, ai, tool) read other than field by field (``get(task, ...)``,
    ``task.exists(...)``): a decision must give the condition all of their fields."""


@dataclass
class CompiledCondition:
    source: str
    program: Any = None
    analysis: Analysis = field(default_factory=Analysis)
    problems: list[tuple[int, str]] = field(default_factory=list)
    """``(line within the expression, message)`` for every problem found."""


_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_SELECT = re.compile(rf"(?<![\w.])(?P<var>{_IDENT})\s*\.\s*(?P<field>{_IDENT})(?P<call>\s*\()?")
_SUBSELECT = re.compile(
    rf"(?<![\w.])(?P<var>{_IDENT})\s*\.\s*(?P<field>{_IDENT})\s*\.\s*(?P<key>{_IDENT})"
)
_INDEX_BEFORE = re.compile(
    rf"(?<![\w.])(?P<var>{_IDENT})(?:\s*\.\s*(?P<field>{_IDENT}))?\s*\[\s*\Z"
)
_IN_AFTER = re.compile(rf"\A\s+in\s+(?P<var>{_IDENT})\s*\.\s*(?P<field>{_IDENT})(?![\w.\[])")
_COMPREHENSION = re.compile(
    rf"\.\s*(?:{'|'.join(MACROS)})\s*\(\s*(?P<first>{_IDENT})\s*,(?:\s*(?P<second>{_IDENT})\s*,)?"
)
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.])")
_GLOB_ARGUMENT = {"touches": 1, "within": 1, "covers": 0}
"""Which argument of a helper is a glob (counting the receiver of a method call as first)."""


def compile_condition(source: str) -> CompiledCondition:
    """Compile ``source`` and check it against the request schema; problems are collected."""
    result = CompiledCondition(source)
    scanned = scan_within_bounds(source)
    if not isinstance(scanned, Scanned):
        result.problems.append(scanned)
        return result
    try:
        result.program = compile_program(source)
    except ValueError as error:
        result.problems.append(_syntax_problem(str(error)))
        return result
    comprehension = _comprehension_variables(scanned.blank)
    references = result.program.references()
    for name in sorted(set(references["variables"]) - set(vocabulary.VARIABLES) - comprehension):
        valid = ", ".join(vocabulary.VARIABLES)
        line = _line_of(scanned, rf"(?<![\w.]){re.escape(name)}\b")
        result.problems.append((line, f"unknown variable {name!r}; valid variables: {valid}"))
    known = BUILTIN_FUNCTIONS | set(FUNCTIONS)
    for name in sorted(references["functions"]):
        if name[0] in "_@!-" or name in known:
            continue
        helpers = ", ".join(FUNCTIONS)
        line = _line_of(scanned, rf"\b{re.escape(name)}\s*\(")
        result.problems.append(
            (line, f"unknown function {name!r}; aictl adds {helpers} to CEL's built-ins")
        )
    fields, keys = _check_fields(scanned, comprehension, result.problems)
    found_globs = _glob_literals(scanned, result.problems)
    result.analysis = Analysis(
        fields=frozenset(fields),
        keys=frozenset(keys),
        globs=tuple(found_globs),
        regexes=tuple(_arguments_of(scanned, "matches", 1)),
        strings=tuple(dict.fromkeys(literal.value for literal in scanned.literals)),
        numbers=tuple(_numbers(scanned.blank)),
        variables=frozenset(references["variables"]) - comprehension,
        whole=frozenset(_used_whole(scanned)),
    )
    return result


_FOLLOWED_BY_FIELD = re.compile(rf"\s*\.\s*{_IDENT}(?!\s*\()")


def _used_whole(scanned: Scanned) -> set[str]:
    """Record variables with an occurrence that is not ``var.field`` or ``var["field"]``."""
    found = set()
    blank = scanned.blank
    for variable, fields in vocabulary.VARIABLES.items():
        if fields is None:
            continue
        for match in re.finditer(rf"(?<![\w.]){variable}\b", blank):
            rest = match.end()
            if _FOLLOWED_BY_FIELD.match(blank, rest):
                continue
            index = re.match(r"\s*\[\s*", blank[rest:])
            if index:
                start = rest + index.end()
                literal = next((lit for lit in scanned.literals if lit.start == start), None)
                if literal is not None and re.match(r"\s*\]", blank[literal.end :]):
                    continue
            found.add(variable)
    return found


def _syntax_problem(text: str) -> tuple[int, str]:
    """``cel.compile``'s message, reduced to what a person needs: where and what."""
    match = re.search(r"<input>:(\d+):(\d+): (.*)", text, re.DOTALL)
    if not match:
        return 1, f"condition syntax error: {text}"
    line, column, rest = int(match[1]), int(match[2]), match[3].rstrip()
    first, _, caret = rest.partition("\n")
    message = f"condition syntax error at column {column}: {first.removeprefix('Syntax error: ')}"
    if caret.strip():
        message += "\n" + "\n".join(f"    {row}" for row in caret.splitlines())
    return line, message


def _line_of(scanned: Scanned, pattern: str) -> int:
    match = re.search(pattern, scanned.blank)
    return scanned.source.count("\n", 0, match.start()) + 1 if match else 1


def _comprehension_variables(blank: str) -> set[str]:
    names = set()
    for match in _COMPREHENSION.finditer(blank):
        names.add(match["first"])
        if match["second"]:
            names.add(match["second"])
    return names


def _check_fields(
    scanned: Scanned, comprehension: set[str], problems: list[tuple[int, str]]
) -> tuple[set[tuple[str, str]], set[tuple[str, str, str]]]:
    fields: set[tuple[str, str]] = set()
    keys: set[tuple[str, str, str]] = set()

    def check(variable: str, name: str, position: int) -> None:
        valid = vocabulary.VARIABLES.get(variable)
        if valid is None or variable in comprehension:
            return
        if name in valid:
            fields.add((variable, name))
            return
        line = scanned.source.count("\n", 0, position) + 1
        hint = did_you_mean(name, valid)
        problems.append(
            (line, f"unknown field {name!r} of {variable}; {hint}valid fields: {', '.join(valid)}")
        )

    blank = scanned.blank
    for match in _SELECT.finditer(blank):
        if not match["call"]:
            check(match["var"], match["field"], match.start("field"))
    for match in _SUBSELECT.finditer(blank):
        if (match["var"], match["field"]) in vocabulary.OPEN_MAPS:
            keys.add((match["var"], match["field"], match["key"]))
    for literal in scanned.literals:
        before = _INDEX_BEFORE.search(blank, 0, literal.start)
        closes = re.match(r"\s*\]", blank[literal.end :])
        if before and closes:
            if before["field"] is None:
                check(before["var"], literal.value, literal.start)
            elif (before["var"], before["field"]) in vocabulary.OPEN_MAPS:
                keys.add((before["var"], before["field"], literal.value))
        after = _IN_AFTER.match(blank[literal.end :])
        if after and (after["var"], after["field"]) in vocabulary.OPEN_MAPS:
            keys.add((after["var"], after["field"], literal.value))
    for receiver, arguments in calls(blank, "get"):
        spans = ([receiver] if receiver else []) + arguments
        if len(spans) < 2:
            continue
        owner = re.sub(r"\s+", "", blank[spans[0][0] : spans[0][1]])
        key = scanned.literal_at(*spans[1])
        variable, _, name = owner.partition(".")
        if key is not None and (variable, name) in vocabulary.OPEN_MAPS:
            keys.add((variable, name, key.value))
    return fields, keys


def _arguments_of(scanned: Scanned, name: str, position: int) -> list[str]:
    return [literal.value for literal in literal_arguments(scanned, name, position)]


def _glob_literals(scanned: Scanned, problems: list[tuple[int, str]]) -> list[str]:
    found: list[str] = []
    for name, position in _GLOB_ARGUMENT.items():
        for literal in literal_arguments(scanned, name, position):
            try:
                found.append(globs.normalize_glob(literal.value))
            except globs.GlobError as error:
                line = scanned.source.count("\n", 0, literal.start) + 1
                hint = f" ({error.hint})" if error.hint else ""
                problems.append((line, f"in {name}(): {error.message}{hint}"))
    return list(dict.fromkeys(found))


def _numbers(blank: str) -> list[int | float]:
    values: list[int | float] = []
    for match in _NUMBER.finditer(blank):
        text = match[1]
        values.append(float(text) if "." in text else int(text))
    return list(dict.fromkeys(values))
