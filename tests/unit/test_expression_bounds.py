"""Hostile expressions: conditions and workflow expressions are bounded in size and in cost at
load time, and a panic of the Rust CEL library is an invalid expression, never a crash.

Before: a 65,000-character condition with a syntax error panicked the parser, and the panic
(``pyo3_runtime.PanicException``, a ``BaseException``) escaped every ``except Exception`` and
killed the daemon on reload; three nested ``.all()`` over a task's paths made one claim take
16 s inside the write transaction.
"""

from __future__ import annotations

import pytest

from aictl.policy.celbinding import CelPanic, cel, compile_program, is_panic, panics_as_errors
from aictl.policy.celtext import MAX_EXPRESSION_CHARS, MAX_MACRO_NESTING
from aictl.policy.conditions import compile_condition
from aictl.policy.loader import load_text
from aictl.workflows.loader import load_text as load_workflow_text

#: Long enough for the parser of common-expression-language 0.10 to panic formatting its error.
PANICKING = "1 + " * 20_000 + "("

RULE = """\
version: 1
rules:
  - id: r
    actions: [claim]
    when: {when}
    effect: deny
    reason: because
"""


def errors(text: str) -> list[str]:
    return [str(issue) for issue in load_text(text, display="p.yaml").issues if issue.is_error]


def test_the_library_really_panics_on_the_long_expression() -> None:
    """The premise: without the guard, the panic is a BaseException that is no Exception."""
    with pytest.raises(BaseException) as raised:
        cel().compile(PANICKING)
    assert is_panic(raised.value) and not isinstance(raised.value, Exception)


def test_a_panic_of_the_parser_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="the CEL library failed"):
        compile_program(PANICKING)


def test_panics_as_errors_lets_everything_else_through() -> None:
    with pytest.raises(KeyboardInterrupt), panics_as_errors():
        raise KeyboardInterrupt
    with pytest.raises(CelPanic), panics_as_errors():
        cel().compile(PANICKING)


def test_a_long_condition_is_refused_naming_file_line_and_field() -> None:
    found = errors(RULE.format(when=f'"{PANICKING}"'))
    assert len(found) == 1, found
    assert found[0].startswith("p.yaml:5: rules[0].when: ")
    assert f"at most {MAX_EXPRESSION_CHARS:,} are allowed" in found[0]
    assert "80,001 characters" in found[0]


def test_a_condition_at_the_limit_still_compiles() -> None:
    padding = MAX_EXPRESSION_CHARS - len("true || ") - 2
    source = "true || " + '"' + "x" * padding + '"'
    assert len(source) == MAX_EXPRESSION_CHARS
    compiled = compile_condition(source)
    assert not compiled.problems and compiled.program is not None


def test_three_nested_comprehensions_are_refused_at_their_line() -> None:
    when = (
        "|\n      task.paths.all(a,\n        task.paths.all(b,\n"
        "          task.paths.all(c, a != c)))"
    )
    found = errors(RULE.format(when=when))
    assert len(found) == 1, found
    assert found[0].startswith("p.yaml:8: rules[0].when: ")
    assert f"nested 3 deep; at most {MAX_MACRO_NESTING} are allowed" in found[0]


def test_two_nested_comprehensions_and_macro_words_in_strings_are_fine() -> None:
    nested = compile_condition('task.paths.all(a, task.paths.exists(b, a == b || b == ".all("))')
    assert not nested.problems
    sequential = compile_condition(
        "task.paths.all(a, a != '') && task.paths.exists(b, b != '') && "
        "task.paths.map(c, c).filter(d, d != '').size() > 0"
    )
    assert not sequential.problems


def test_workflow_expressions_have_the_same_bounds() -> None:
    head = "version: 1\nname: flow\nsteps:\n  - id: a\n    task: {title: A}\n"
    long = head + f"    when: '{PANICKING}'\n"
    found = [str(issue) for issue in load_workflow_text(long, display="w.yaml").issues]
    assert len(found) == 1 and "characters long" in found[0], found
    nested = head + "    when: '[1].all(x, [1].all(y, [1].all(z, x == z)))'\n"
    found = [str(issue) for issue in load_workflow_text(nested, display="w.yaml").issues]
    assert len(found) == 1 and "nested 3 deep" in found[0], found
    assert found[0].startswith("w.yaml:6: steps[0].when:")
