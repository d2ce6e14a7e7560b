"""Staged loading: every kind of error, with its file, line and field, all reported at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from aictl.errors import InvalidInput
from aictl.policy import InvalidPolicy, PolicyIssue, load_policy, validate_files
from aictl.policy.loader import load_text


@pytest.fixture(autouse=True)
def no_global_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AICTL_GLOBAL_POLICY", "")


def issues_of(text: str) -> list[PolicyIssue]:
    return [i for i in load_text(textwrap.dedent(text), display="p.yaml").issues if i.is_error]


def only(text: str) -> PolicyIssue:
    found = issues_of(text)
    assert len(found) == 1, found
    return found[0]


RULE = """\
version: 1
rules:
  - id: r
    actions: [claim]
    when: {when}
    effect: deny
    reason: because
"""


def rule_with(when: str) -> str:
    return RULE.format(when=when)


# ----------------------------------------------------------------------------- stage 1: YAML


def test_a_duplicate_key_names_both_lines() -> None:
    issue = only(
        """\
        version: 1
        default: allow
        settings:
          lease_ttl: 5m
        default: deny
        """
    )
    assert (issue.line, issue.field) == (5, "default")
    assert "duplicate key 'default' (first at line 2)" in issue.message


def test_a_duplicate_key_inside_a_rule_is_found_too() -> None:
    issue = only(
        """\
        version: 1
        rules:
          - id: r
            actions: [claim]
            effect: deny
            reason: x
            effect: allow
        """
    )
    assert (issue.line, issue.field) == (7, "rules[0].effect")
    assert "first at line 5" in issue.message


def test_a_yaml_syntax_error_has_line_and_column() -> None:
    issue = only("version: 1\ndefault: [a\n  b: c\n")
    assert issue.line == 2  # the '[' never closed, not the line where PyYAML gave up
    assert issue.message.startswith("YAML syntax error (column 10): ")
    assert (
        "expected ',' or ']'" in issue.message and "(noticed at line 3, column 4)" in issue.message
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("version: 1\nsettings\n  lease_ttl: 5m\n", 2),  # a key without ':'
        ('version: 1\ndefault: "allow\nsettings: {}\n', 2),  # a quote never closed
        ("version: 1\nsettings:\n  lease_ttl: 5m\n heartbeat_interval: 1m\n", 4),
        ("version: 1\nrules:\n  - id: a\n    reason: a: b\n", 4),
    ],
)
def test_a_yaml_syntax_error_is_reported_at_the_line_to_fix(text: str, line: int) -> None:
    assert only(text).line == line


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("version: 1\nsettings:\n\tlease_ttl: 5m\n", 3),
        ("version: 1\nsettings:\n  lease_ttl: 5m\n\tmax_attempts: 3\n", 4),
    ],
)
def test_a_tab_in_the_indentation_is_named(text: str, line: int) -> None:
    issue = only(text)
    assert issue.line == line
    assert "a tab in the indentation; YAML indents with spaces only" in issue.message


def test_a_misspelt_field_gets_a_did_you_mean() -> None:
    issue = only("version: 1\nsettings:\n  concurency: 2\n")
    assert (issue.line, issue.field) == (3, "settings.concurency")
    assert "unknown field 'concurency'; did you mean `concurrency`? valid fields:" in issue.message


def test_a_misspelt_effect_gets_a_did_you_mean() -> None:
    issue = only(rule_with("'true'").replace("effect: deny", "effect: dny"))
    assert "did you mean `deny`?" in issue.message


def test_an_empty_file_is_an_error_that_says_what_to_write() -> None:
    issue = only("# nothing but a comment\n")
    assert "version: 1" in issue.message


def test_yaml_tags_that_build_objects_are_refused() -> None:
    issue = only("version: 1\ndefault: !!python/object:os.system allow\n")
    assert issue.line == 2 and "unreadable value" in issue.message


def test_merge_keys_are_refused() -> None:
    found = issues_of(
        """\
        version: 1
        base: &base {lease_ttl: 5m}
        settings:
          <<: *base
        """
    )
    assert any("merge keys" in issue.message and issue.line == 4 for issue in found)


# ----------------------------------------------------------------------------- stage 2: structure


def test_the_top_level_must_be_a_mapping() -> None:
    issue = only("- version: 1\n")
    assert issue.line == 1 and "is a mapping" in issue.message and "not a list" in issue.message


def test_the_version_must_be_present() -> None:
    issue = only("default: allow\n")
    assert "missing 'version'" in issue.message


@pytest.mark.parametrize("version", ["2", '"1"', "true"])
def test_only_version_1_is_read(version: str) -> None:
    issue = only(f"default: allow\nversion: {version}\n")
    assert (issue.line, issue.field) == (2, "version")
    assert "unsupported version" in issue.message and "reads version 1" in issue.message


def test_a_structure_error_stops_the_file_before_the_schema() -> None:
    found = issues_of("version: 7\nbogus: field\nrules: 3\n")
    assert len(found) == 1 and found[0].field == "version"


# ----------------------------------------------------------------------------- stage 3: schema


def test_a_wrong_type_names_the_field_its_line_and_what_was_given() -> None:
    issue = only(
        """\
        version: 1
        settings:
          max_attempts: "three"
        """
    )
    assert (issue.line, issue.field) == (3, "settings.max_attempts")
    assert issue.message == "expected a whole number, got 'three'"


def test_an_unknown_field_lists_the_valid_ones() -> None:
    issue = only(
        """\
        version: 1
        settings:
          lease_tt: 5m
        """
    )
    assert (issue.line, issue.field) == (3, "settings.lease_tt")
    assert "unknown field 'lease_tt'" in issue.message
    assert "lease_ttl, heartbeat_interval, max_attempts" in issue.message


def test_an_unknown_per_ai_field_lists_the_per_ai_fields() -> None:
    issue = only(
        """\
        version: 1
        ais:
          claude-1:
            max_turn: 3
        """
    )
    assert (issue.line, issue.field) == (4, "ais.claude-1.max_turn")
    assert "allowed_tools, denied_tools, permission_mode" in issue.message


def test_an_unknown_rule_field_names_the_rule() -> None:
    issue = only(
        """\
        version: 1
        rules:
          - id: no-prod
            actions: [claim]
            effect: deny
            reason: x
            efect: allow
        """
    )
    assert (issue.line, issue.field) == (7, "rules[0].efect")
    assert issue.message.startswith("rule 'no-prod': unknown field 'efect'")
    assert "id, description, actions, when, effect, reason" in issue.message


def test_an_unknown_effect_lists_the_valid_effects() -> None:
    issue = only(RULE.format(when="'true'").replace("effect: deny", "effect: block"))
    assert (issue.line, issue.field) == (6, "rules[0].effect")
    assert "unknown effect 'block'; valid effects: allow, deny, require_approval, warn" in (
        issue.message
    )


def test_an_unknown_action_lists_the_valid_actions() -> None:
    issue = only(RULE.format(when="'true'").replace("[claim]", "[claim, merge]"))
    assert issue.field == "rules[0].actions"
    assert "unknown action 'merge'; valid actions: create, claim, execute, tool" in issue.message


def test_an_empty_actions_list_is_an_error() -> None:
    issue = only(RULE.format(when="'true'").replace("[claim]", "[]"))
    assert issue.field == "rules[0].actions" and "list at least one action" in issue.message


def test_warn_cannot_be_the_default() -> None:
    issue = only("version: 1\ndefault: warn\n")
    assert issue.field == "default" and "valid defaults: allow, deny, require_approval" in (
        issue.message
    )


def test_a_missing_reason_points_at_the_rule() -> None:
    issue = only("version: 1\nrules:\n  - id: r\n    actions: [claim]\n    effect: deny\n")
    assert (issue.line, issue.field) == (3, "rules[0].reason")
    assert "missing required field 'reason'" in issue.message


def test_a_bad_rule_id_and_a_bad_duration_and_a_bad_permission_mode() -> None:
    found = issues_of(
        """\
        version: 1
        settings:
          lease_ttl: soon
        ais:
          claude-1:
            permission_mode: yolo
        rules:
          - id: Bad_Id
            actions: [claim]
            effect: deny
            reason: x
        """
    )
    by_field = {issue.field: issue for issue in found}
    assert by_field["settings.lease_ttl"].message.startswith("invalid duration 'soon'; use")
    assert by_field["settings.lease_ttl"].line == 3
    assert "unknown permission mode 'yolo'" in by_field["ais.claude-1.permission_mode"].message
    assert "invalid rule id 'Bad_Id'" in by_field["rules[0].id"].message


@pytest.mark.parametrize("field", ["lease_ttl", "heartbeat_interval", "retry_backoff"])
def test_a_duration_without_a_unit_is_refused_with_the_likely_units(field: str) -> None:
    issue = only(f"version: 1\nsettings:\n  {field}: 10\n")
    assert (issue.line, issue.field) == (3, f"settings.{field}")
    assert "a duration needs a unit" in issue.message and "10s? 10m?" in issue.message


def test_strict_values_are_not_coerced() -> None:
    issue = only(rule_with("true"))
    assert issue.field == "rules[0].when" and "expected text, got True" in issue.message
    assert "quote it" in issue.message


# ----------------------------------------------------------------------------- stage 4: conditions


def test_a_cel_syntax_error_has_its_column_and_a_caret() -> None:
    issue = only(rule_with("'task.priority >'"))
    assert (issue.line, issue.field) == (5, "rules[0].when")
    assert issue.message.startswith("rule 'r': condition syntax error at column")
    assert "^" in issue.message


def test_a_misspelt_field_names_the_rule_the_line_and_the_valid_fields() -> None:
    issue = only(rule_with("task.prioritee > 3"))
    assert (issue.file, issue.line, issue.field) == ("p.yaml", 5, "rules[0].when")
    assert issue.message.startswith("rule 'r': unknown field 'prioritee' of task")
    assert "valid fields: id, title, description, type, priority" in issue.message


def test_misspelt_fields_of_ai_and_tool_and_through_index_and_has() -> None:
    assert "unknown field 'lables' of ai" in only(rule_with("ai.lables.x == 'y'")).message
    assert "unknown field 'nmae' of tool" in only(rule_with("tool.nmae == 'Bash'")).message
    assert "unknown field 'titel' of task" in only(rule_with("""'task["titel"] == "x"'""")).message
    assert "unknown field 'statsu' of task" in only(rule_with("has(task.statsu)")).message


def test_a_multi_line_condition_reports_the_line_of_the_typo() -> None:
    issue = only(
        """\
        version: 1
        rules:
          - id: r
            actions: [claim]
            when: |
              task.priority > 3 &&
              task.labls.env == "prod"
            effect: deny
            reason: x
        """
    )
    assert issue.line == 7 and "unknown field 'labls'" in issue.message


def test_an_unknown_function_lists_the_helpers() -> None:
    issue = only(rule_with("'touch(task.paths, \"src/**\")'"))
    assert "unknown function 'touch'" in issue.message
    assert "touches, within, covers, get" in issue.message


def test_an_unknown_variable_lists_the_variables() -> None:
    issue = only(rule_with("tsk.priority > 3"))
    assert "unknown variable 'tsk'; valid variables: action, task, ai, tool, paths" in (
        issue.message
    )


def test_an_invalid_glob_literal_is_a_load_error() -> None:
    issue = only(rule_with("'touches(task.paths, \"src/**.py\")'"))
    assert "in touches(): invalid glob 'src/**.py'" in issue.message
    assert "src/**/*.py" in issue.message


@pytest.mark.parametrize(
    "condition",
    [
        "'task.paths.exists(p, p.startsWith(\"db/\")) && size(task.paths) > 0'",
        "'task.labels.anything == \"x\" || ai.labels.zone.size() > 0'",
        '\'tool.input.command.contains("git.push") && tool.name in ["Bash"]\'',
        "'\"a.b.c\" in task.labels && has(task.evidence.x)'",
        "'task.requires.all(c, c in ai.capabilities) && action == \"claim\"'",
        '\'paths.exists(p, covers("src/**", p)) || within(task.paths, "docs/")\'',
        '\'get(task.labels, "team", "") == "api" // a comment with task.bogus\'',
        "'[1, 2].map(x, x * 2).exists(y, y > 3) && {\"k\": 1}.k == 1'",
    ],
)
def test_valid_conditions_pass_the_field_check(condition: str) -> None:
    assert issues_of(rule_with(condition)) == []


def test_a_duplicate_rule_id_names_the_first() -> None:
    issue = only(
        """\
        version: 1
        rules:
          - id: same
            actions: [claim]
            effect: deny
            reason: x
          - id: same
            actions: [tool]
            effect: allow
            reason: y
        """
    )
    assert (issue.line, issue.field) == (7, "rules[1].id")
    assert "duplicate rule id 'same' (first at line 3)" in issue.message


def test_a_heartbeat_must_be_shorter_than_the_lease() -> None:
    issue = only("version: 1\nsettings:\n  lease_ttl: 1m\n  heartbeat_interval: 90s\n")
    assert (issue.line, issue.field) == (4, "settings.heartbeat_interval")
    assert "must be shorter than lease_ttl" in issue.message


def test_conditions_are_checked_even_when_the_schema_failed() -> None:
    found = issues_of(
        """\
        version: 1
        rules:
          - id: r
            actions: [claim]
            when: task.prioritee > 1
            effect: block
            reason: x
        """
    )
    assert {issue.field for issue in found} == {"rules[0].effect", "rules[0].when"}


# ----------------------------------------------------------------------------- all at once


def test_every_error_of_every_file_in_one_run(tmp_path: Path) -> None:
    first = tmp_path / "first.yaml"
    first.write_text("version: 1\ndefault: maybe\nsettings:\n  max_attempts: 0\n")
    second = tmp_path / "second.yaml"
    second.write_text("version: 1\nversion: 1\nrules:\n  - id: a\n")
    third = tmp_path / "third.yaml"
    third.write_text("version: 1\n")
    found = [issue for issue in validate_files([first, second, third]) if issue.is_error]
    where = {(Path(issue.file).name, issue.line, issue.field) for issue in found}
    assert ("first.yaml", 2, "default") in where
    assert ("first.yaml", 4, "settings.max_attempts") in where
    assert ("second.yaml", 2, "version") in where
    assert {("second.yaml", 4, f"rules[0].{name}") for name in ("actions", "effect", "reason")} <= (
        where
    )
    assert not any(name == "third.yaml" for name, _, _ in where)


def test_load_policy_raises_one_error_listing_every_problem(repo: Path) -> None:
    (repo / ".ai").mkdir()
    (repo / ".ai" / "policy.yaml").write_text("version: 1\ndefault: maybe\nrules: 3\n")
    with pytest.raises(InvalidPolicy) as caught:
        load_policy(repo)
    error = caught.value
    assert isinstance(error, InvalidInput) and error.exit_code == 2
    assert len(error.issues) == 2
    assert ".ai/policy.yaml:2: default: unknown effect 'maybe'" in error.message
    assert ".ai/policy.yaml:3: rules: expected a list, got 3" in error.message


def test_an_unreadable_file_is_an_issue_not_a_crash(tmp_path: Path) -> None:
    binary = tmp_path / "bad.yaml"
    binary.write_bytes(b"version: 1\n\xff\xfe\n")
    missing = tmp_path / "missing.yaml"
    found = validate_files([binary, missing])
    messages = " | ".join(issue.message for issue in found)
    assert "not UTF-8 text" in messages and "cannot read the file" in messages


def test_issue_text_and_json_forms() -> None:
    issue = PolicyIssue("p.yaml", 3, "rules[0].when", "bad", "warning", rule="project:r")
    assert str(issue) == "p.yaml:3: rules[0].when: bad"
    assert str(issue._replace(field="")) == "p.yaml:3: bad"
    assert issue.to_dict()["severity"] == "warning" and not issue.is_error
