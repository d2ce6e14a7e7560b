"""Hostile YAML: every policy, workflow and skill file is bounded before it is expanded.

A "billion laughs" file (nested aliases) used to take gigabytes and never answer; a file of
a hundred megabytes, or nested ten thousand levels deep, is no configuration either. Each is
refused with an error that names the file and line, in bounded time and memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aictl.policy import source
from aictl.policy.loader import load_file, load_text
from aictl.skills.loader import load_skill
from aictl.workflows.loader import load_file as load_workflow


def laughs(levels: int = 9, width: int = 10) -> str:
    """The classic: each level an anchored list of ``width`` aliases of the level below, so
    the last one expands to ``width ** levels`` strings (a billion by default)."""
    rows = ['a0: &a0 "lol"']
    for level in range(1, levels + 1):
        items = ", ".join([f"*a{level - 1}"] * width)
        rows.append(f"a{level}: &a{level} [{items}]")
    return "version: 1\n" + "\n".join(rows) + "\n"


def errors(issues: list) -> list[str]:  # type: ignore[type-arg]
    return [f"{issue.file}:{issue.line}: {issue.message}" for issue in issues if issue.is_error]


def test_a_billion_laughs_policy_is_refused_naming_the_alias_line() -> None:
    loaded = load_text(laughs(), display="p.yaml")
    found = errors(loaded.issues)
    assert len(found) == 1, found
    assert "aliases" in found[0] and "expand" in found[0]
    assert found[0].startswith("p.yaml:")
    assert loaded.data is None


def test_a_billion_laughs_workflow_and_skill_are_refused(tmp_path: Path) -> None:
    workflow = tmp_path / "w.yaml"
    workflow.write_text(laughs())
    found = errors(load_workflow(workflow).issues)
    assert len(found) == 1 and "expand" in found[0], found
    skill = tmp_path / "s"
    skill.mkdir()
    (skill / "skill.yaml").write_text(laughs().replace("version: 1\n", "name: s\n"))
    found = errors(load_skill(skill).issues)
    assert len(found) == 1 and "expand" in found[0], found


def test_a_few_aliases_are_still_fine() -> None:
    parsed = source.parse("base: &b [a, b]\nother: *b\nthird: *b\n")
    assert not parsed.problems
    assert parsed.data == {"base": ["a", "b"], "other": ["a", "b"], "third": ["a", "b"]}


def test_deep_nesting_is_refused_without_recursing() -> None:
    deep = "x: " + "[" * 10_000 + "]" * 10_000 + "\n"
    parsed = source.parse(deep)
    assert parsed.data is None
    assert len(parsed.problems) == 1
    assert "nesting depth" in parsed.problems[0].message  # libyaml's own flow bound (1,000)
    block = "".join(f"{'  ' * level}k{level}:\n" for level in range(200)) + "  " * 200 + "v: 1\n"
    problem = source.parse(block).problems[0]
    assert f"nested more than {source.MAX_DEPTH} levels" in problem.message
    assert problem.line == source.MAX_DEPTH + 1


def test_moderate_nesting_loads() -> None:
    text = "x: " + "[" * 20 + "1" + "]" * 20 + "\n"
    parsed = source.parse(text)
    assert not parsed.problems


def test_a_file_over_the_size_limit_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    big = tmp_path / "policy.yaml"
    with big.open("w") as stream:
        stream.write("version: 1\n# ")
        stream.write("x" * (source.MAX_FILE_BYTES + 10))
    found = errors(load_file(big, display="big.yaml").issues)
    assert len(found) == 1, found
    assert found[0].startswith("big.yaml:1:")
    assert "1 MiB" in found[0]


def test_text_over_the_size_limit_is_refused_by_the_parser_too() -> None:
    parsed = source.parse("# " + "x" * source.MAX_FILE_BYTES)
    assert parsed.data is None and "1 MiB" in parsed.problems[0].message


@pytest.mark.parametrize("kind", ["policy", "workflow", "skill"])
def test_invalid_utf8_names_the_file_line_and_byte(tmp_path: Path, kind: str) -> None:
    raw = b"version: 1\nname: ok\ndescription: caf\xe9\n"
    if kind == "policy":
        path = tmp_path / "p.yaml"
        path.write_bytes(raw)
        issues = load_file(path, display="p.yaml").issues
        shown = "p.yaml"
    elif kind == "workflow":
        path = tmp_path / "w.yaml"
        path.write_bytes(raw)
        issues = load_workflow(path, display="w.yaml").issues
        shown = "w.yaml"
    else:
        (tmp_path / "s").mkdir()
        (tmp_path / "s" / "skill.yaml").write_bytes(raw)
        issues = load_skill(tmp_path / "s", display="s").issues
        shown = "s/skill.yaml"
    found = errors(issues)
    assert found == [
        f"{shown}:3: not UTF-8 text: invalid continuation byte at byte 36 (line 3, column 17)"
    ]
