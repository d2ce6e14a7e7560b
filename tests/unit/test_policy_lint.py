"""Lint: conflicts with an example request, shadowed rules, unknown AIs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from aictl.policy import Layer, PolicyIssue, validate_files
from aictl.policy.evaluate import context_for
from aictl.policy.lint import lint
from aictl.policy.loader import load_text


def layer(text: str, name: str = "project") -> Layer:
    loaded = load_text(textwrap.dedent(text), display=f"{name}.yaml", layer=name)
    assert loaded.ok, loaded.issues
    return loaded.layer_value()


def messages(issues: list[PolicyIssue]) -> list[str]:
    return [issue.message for issue in issues]


def applies(rule_layer: Layer, rule_id: str, request: dict[str, object]) -> bool:
    rule = next(rule for rule in rule_layer.rules if rule.id == rule_id)
    return request["action"] in rule.actions and (
        rule.program is None or rule.program.execute(context_for(request)) is True
    )


def test_a_conflict_comes_with_an_example_that_triggers_both_rules() -> None:
    policy = layer(
        """\
        version: 1
        rules:
          - id: hold-migrations
            actions: [claim, execute]
            when: touches(task.paths, "db/migrations/**")
            effect: require_approval
            reason: x
          - id: urgent-is-fine
            actions: [claim]
            when: task.priority >= 8 && get(task.labels, "team", "") == "dba"
            effect: allow
            reason: y
        """
    )
    [issue] = lint([policy])
    assert (issue.severity, issue.line, issue.field, issue.rule) == (
        "warning",
        8,
        "rules[1]",
        "project:urgent-is-fine",
    )
    assert "conflicts with project:hold-migrations (require_approval, project.yaml:3)" in (
        issue.message
    )
    example = dict(issue.example or {})
    assert example["action"] == "claim"
    assert applies(policy, "hold-migrations", example)
    assert applies(policy, "urgent-is-fine", example)
    assert 'task.labels.team="dba"' in issue.message and "task.priority=8" in issue.message


def test_deny_against_require_approval_is_a_conflict_across_layers() -> None:
    first = layer(
        """\
        version: 1
        rules:
          - id: no-infra
            actions: [tool]
            when: tool.name == "Edit" && touches(paths, "infra/**")
            effect: deny
            reason: x
        """,
        "global",
    )
    second = layer(
        """\
        version: 1
        rules:
          - id: hold-edits
            actions: [tool, claim]
            when: tool.name in ["Edit", "Write"]
            effect: require_approval
            reason: y
        """
    )
    [issue] = lint([first, second])
    assert "project:hold-edits (require_approval) conflicts with global:no-infra (deny" in (
        issue.message
    )
    example = dict(issue.example or {})
    assert applies(first, "no-infra", example) and applies(second, "hold-edits", example)
    assert example["paths"] == ["infra/x"]


def test_rules_that_cannot_meet_do_not_conflict() -> None:
    policy = layer(
        """\
        version: 1
        rules:
          - id: deny-docs
            actions: [claim]
            when: within(task.paths, "docs/**")
            effect: deny
            reason: x
          - id: allow-src
            actions: [claim]
            when: within(task.paths, "src/**")
            effect: allow
            reason: y
          - id: deny-tools
            actions: [tool]
            effect: deny
            reason: different action
          - id: warn-all
            actions: [claim]
            effect: warn
            reason: warnings conflict with nothing
        """
    )
    assert lint([policy]) == []


def test_a_shadowed_rule_is_reported_with_the_rule_that_shadows_it() -> None:
    policy = layer(
        """\
        version: 1
        rules:
          - id: no-db
            actions: [claim]
            when: touches(task.paths, "db/**")
            effect: deny
            reason: x
          - id: migrations-ok
            actions: [claim]
            when: touches(task.paths, "db/migrations/**")
            effect: allow
            reason: never decides
        """
    )
    shadowed = [issue for issue in lint([policy]) if "shadowed" in issue.message]
    assert len(shadowed) == 1
    assert shadowed[0].rule == "project:migrations-ok" and shadowed[0].line == 8
    assert "a stronger rule applies too (project:no-db (deny))" in shadowed[0].message


def test_a_rule_that_escapes_its_stronger_neighbour_is_not_shadowed() -> None:
    policy = layer(
        """\
        version: 1
        rules:
          - id: no-low-priority
            actions: [claim]
            when: task.priority < 3
            effect: deny
            reason: x
          - id: docs
            actions: [claim, create]
            when: task.type == "docs"
            effect: allow
            reason: y
        """
    )
    assert not any("shadowed" in message for message in messages(lint([policy])))


def test_unknown_ais_in_files_and_settings() -> None:
    project = layer(
        """\
        version: 1
        ais:
          claude-1: {max_turns: 3}
          ghost: {max_turns: 3}
        """
    )
    own = layer(
        """\
        version: 1
        ais:
          phantom: {max_turns: 3}
          somebody-else: {max_turns: 1}
        """,
        "ai:phantom",
    )
    found = lint([project, own], known_ais={"claude-1", "somebody-else"})
    where = {(issue.file, issue.line, issue.field): issue.message for issue in found}
    assert "settings for unknown AI 'ghost'" in where[("project.yaml", 4, "ais.ghost")]
    assert "per-AI file for unknown AI 'phantom'" in where[("ai:phantom.yaml", 1, "")]
    assert "applies only to 'phantom'" in where[("ai:phantom.yaml", 4, "ais.somebody-else")]
    assert all(issue.severity == "warning" for issue in found)
    assert len(lint([project, own], known_ais=None)) == 1  # only the other-AI entry


def test_per_ai_files_are_not_linted_against_each_other(tmp_path: Path) -> None:
    folder = tmp_path / ".ai" / "policies"
    folder.mkdir(parents=True)
    for name, effect in (("one", "deny"), ("two", "allow")):
        (folder / f"{name}.yaml").write_text(
            f"version: 1\nrules:\n  - id: r\n    actions: [claim]\n    effect: {effect}\n"
            "    reason: x\n"
        )
    assert validate_files(sorted(folder.iterdir())) == []
    project = tmp_path / ".ai" / "policy.yaml"
    project.write_text(
        "version: 1\nrules:\n  - id: p\n    actions: [claim]\n    effect: require_approval\n"
        "    reason: x\n"
    )
    found = validate_files([project, *sorted(folder.iterdir())])
    assert sorted(issue.rule or "" for issue in found) == [
        "ai:one:r",
        "ai:two:r",
        "ai:two:r",  # also shadowed by the project rule
    ]


@pytest.mark.parametrize("count", [30])
def test_lint_of_many_rules_stays_quick(count: int) -> None:
    import time

    lines = ["version: 1", "rules:"]
    for index in range(count):
        effect = ("deny", "allow", "require_approval")[index % 3]
        lines += [
            f"  - id: r{index}",
            "    actions: [claim]",
            f"    when: 'touches(task.paths, \"p{index % 7}/**\") && task.priority > {index}'",
            f"    effect: {effect}",
            "    reason: x",
        ]
    policy = layer("\n".join(lines) + "\n")
    started = time.perf_counter()
    found = lint([policy])
    assert time.perf_counter() - started < 5
    assert any("conflicts" in message for message in messages(found))
