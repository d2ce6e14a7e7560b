"""The glob helpers, the literal scanner, and the CEL built-ins the field check accepts."""

from __future__ import annotations

import re
import sys

import pytest

from aictl.domain import globs
from aictl.policy import functions
from aictl.policy.celbinding import cel
from aictl.policy.celtext import scan
from aictl.policy.conditions import BUILTIN_FUNCTIONS, compile_condition
from aictl.policy.functions import covers, get, glob_within, touches, within


@pytest.mark.parametrize(
    ("paths", "glob", "expected"),
    [
        (["src/*/a.py"], "src/x/**", True),  # overlap without a common prefix string
        (["src/**/*.py"], "docs/*.md", False),
        (["db/migrations/0001.sql"], "db/migrations/**", True),
        (["db/**"], "db/migrations/**", True),  # a broad lock touches a narrow glob
        (["db/migrations"], "db/migrations/*.sql", False),
        ([], "**", False),
        ("src/app.py", "src/*.py", True),  # one path instead of a list
        (["/etc/passwd", "../x"], "**", False),  # outside the repository: touches nothing
        (["./src//api/"], "src/api/x.py", True),  # entries are normalised
        (["pkg12/**"], "**/*.lock", True),  # pkg12/x.lock
        (["pkg12/**"], "*.lock", False),
        (["src/*.py", "docs/*.md"], "**/*.lock", False),
    ],
)
def test_touches(paths: object, glob: str, expected: bool) -> None:
    assert touches(paths, glob) is expected


@pytest.mark.parametrize(
    ("paths", "glob", "expected"),
    [
        (["docs/a.md", "docs/guide/b.md"], "docs/**", True),
        (["docs/*.md"], "docs/**", True),  # a glob entry must be contained, exactly
        (["docs/**"], "docs/*.md", False),
        (["src/**/*.py"], "src/**", True),
        (["docs/a.md", "src/a.py"], "docs/**", False),
        ([], "docs/**", False),  # an empty list is within nothing
        (["src/[ab]/x"], "src/*/x", True),
        (["src/*/x"], "src/[ab]/x", False),
        (["/abs/docs/a.md"], "**", False),
        (["pkg12/**"], "docs/**", False),
        (["docs/pkg12/**", "docs"], "docs/", True),
        (["a/*"], "a/?*", True),  # over paths: "a/" is no path
    ],
)
def test_within(paths: list[str], glob: str, expected: bool) -> None:
    assert within(paths, glob) is expected


def test_covers_and_get() -> None:
    assert covers("src/**/*.py", "src/a/b.py") and not covers("src/*.py", "src/a/b.py")
    assert covers("docs/", "docs/x.md") and not covers("**", "/etc/passwd")
    assert get({"a": 1}, "a", 0) == 1 and get({}, "a", "none") == "none"


def test_glob_within_is_exact_and_cached() -> None:
    glob_within.cache_clear()
    assert glob_within("a/**/b/*.txt", "a/**") and not glob_within("**/x.py", "a/**")
    assert glob_within.cache_info().misses == 2
    assert glob_within("a/**/b/*.txt", "a/**")
    assert glob_within.cache_info().hits == 1


def test_common_shapes_need_no_automaton(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task's new directory lock against the usual rule globs: no automaton is built."""

    def refuse(glob: str) -> object:
        raise AssertionError(f"automaton built for {glob}")

    cached = (
        functions._touches,
        functions._within,
        glob_within,
        globs._pair_overlaps,
        globs._pair_witness,
        globs._pair_outside,
    )
    for cache in cached:
        cache.cache_clear()
    monkeypatch.setattr(globs, "_glob_fsm", refuse)
    for i in range(20):
        assert touches([f"pkg{i}/**"], "**/*.lock")
        assert touches([f"pkg{i}/**"], "**/Dockerfile")
        assert not touches([f"pkg{i}/**"], "db/migrations/**")
        assert not touches([f"pkg{i}/*.py"], "**/*.lock")
        assert not within([f"pkg{i}/**"], "docs/**")
        assert within([f"docs/pkg{i}/**", f"docs/pkg{i}.md"], "docs/**")
    # The guard is live: a containment no shortcut settles reaches the builder.
    with pytest.raises(AssertionError, match="automaton built"):
        glob_within("docs/**", "docs/*.md")
    for cache in cached:
        cache.cache_clear()


def test_helpers_refuse_misuse() -> None:
    with pytest.raises(TypeError, match="touches\\(\\) takes a list of paths first"):
        touches(3, "src/**")
    with pytest.raises(TypeError, match="within\\(\\) takes a list of paths first"):
        within([1], "src/**")
    with pytest.raises(ValueError, match=re.escape("invalid glob 'src/**.py'")):
        touches(["src/a.py"], "src/**.py")
    with pytest.raises(TypeError, match="covers\\(\\) takes a path second"):
        covers("src/**", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="get\\(\\) takes a map first"):
        get([], "a", 0)


def test_helpers_work_from_cel() -> None:
    program = compile_condition(
        'touches(task.paths, "db/**") && within(task.paths, "db/**") '
        '&& task.paths.exists(p, covers("db/*/x", p)) && get(task.labels, "k", "d") == "d"'
    ).program
    context = cel().Context(
        variables={"task": {"paths": ["db/m/x"], "labels": {}}}, functions=dict(functions.FUNCTIONS)
    )
    assert program.execute(context) is True


def test_every_builtin_the_field_check_accepts_exists_in_the_library() -> None:
    """A name accepted at load time but unknown to the library would fail every request."""
    examples = {
        "size": "size([1]) == 1",
        "contains": '"ab".contains("a")',
        "startsWith": '"ab".startsWith("a")',
        "endsWith": '"ab".endsWith("b")',
        "matches": '"ab".matches("a.")',
        "int": 'int("1") == 1',
        "uint": "uint(1) == 1u",
        "double": "double(1) == 1.0",
        "string": 'string(1) == "1"',
        "bytes": 'bytes("a") == b"a"',
        "timestamp": 'timestamp("2026-01-01T00:00:00Z") != null',
        "duration": 'duration("1s") != null',
        "type": "type(1) == int",
        "dyn": "dyn(1) == 1",
        "getFullYear": 'timestamp("2026-01-01T00:00:00Z").getFullYear() == 2026',
        "getMonth": 'timestamp("2026-01-01T00:00:00Z").getMonth() == 0',
        "getDayOfYear": 'timestamp("2026-01-01T00:00:00Z").getDayOfYear() == 0',
        "getDayOfMonth": 'timestamp("2026-01-01T00:00:00Z").getDayOfMonth() == 0',
        "getDate": 'timestamp("2026-01-01T00:00:00Z").getDate() == 1',
        "getDayOfWeek": 'timestamp("2026-01-01T00:00:00Z").getDayOfWeek() >= 0',
        "getHours": 'timestamp("2026-01-01T00:00:00Z").getHours() == 0',
        "getMinutes": 'timestamp("2026-01-01T00:00:00Z").getMinutes() == 0',
        "getSeconds": 'timestamp("2026-01-01T00:00:00Z").getSeconds() == 0',
        "getMilliseconds": 'timestamp("2026-01-01T00:00:00Z").getMilliseconds() == 0',
        "of": "optional.of(1).hasValue()",
        "ofNonZeroValue": "!optional.ofNonZeroValue(0).hasValue()",
        "none": "!optional.none().hasValue()",
        "hasValue": "optional.of(1).hasValue()",
        "value": "optional.of(1).value() == 1",
        "or": "optional.none().or(optional.of(1)).value() == 1",
        "orValue": "optional.none().orValue(2) == 2",
    }
    assert set(examples) == set(BUILTIN_FUNCTIONS)
    for name, expression in examples.items():
        program = cel().compile(expression)
        assert name in program.references()["functions"], name
        assert program.execute(cel().Context()) is True, name


def test_the_extension_is_loaded_without_the_cel_command_line() -> None:
    cel()
    assert "cel.cel" in sys.modules
    assert "prompt_toolkit" not in sys.modules or "cel.cli" in sys.modules


def test_scan_blanks_literals_and_comments_and_decodes_values() -> None:
    source = 'a == "x.y" && b == r\'raw\\d\' // task.nope\n&& c == """t"""'
    scanned = scan(source)
    assert len(scanned.blank) == len(source) and scanned.blank.count("\n") == 1
    assert "x.y" not in scanned.blank and "nope" not in scanned.blank
    assert [literal.value for literal in scanned.literals] == ["x.y", "raw\\d", "t"]
    escaped = scan(r'"a\"b" + "\u00e9"')
    assert [literal.value for literal in escaped.literals] == ['a"b', "é"]


def test_the_analysis_records_what_the_linter_needs() -> None:
    analysis = compile_condition(
        'touches(task.paths, "db/") && task.labels.env == "prod" && task.priority > 3 '
        '&& get(tool.input, "command", "").matches("^git push") && "x" in ai.labels'
    ).analysis
    assert analysis.globs == ("db/**",)
    assert analysis.regexes == ("^git push",)
    assert {("task", "paths"), ("task", "labels"), ("task", "priority")} <= analysis.fields
    assert {
        ("task", "labels", "env"),
        ("tool", "input", "command"),
        ("ai", "labels", "x"),
    } <= analysis.keys
    assert analysis.numbers == (3,)
    assert analysis.whole == frozenset()
