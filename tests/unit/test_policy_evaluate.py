"""Evaluation: precedence, warn, the default, fail-closed, requests, explanations."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aictl.domain.tasks import Task
from aictl.errors import InvalidInput
from aictl.policy import Policy, build_request, evaluate, explain
from aictl.policy.evaluate import (
    ACTION_NOT_LISTED,
    CONDITION_ERROR,
    CONDITION_FALSE,
    MATCHED,
    context_for,
)
from aictl.policy.layers import merge
from aictl.policy.loader import load_text


def policy_of(text: str, *, layer: str = "project") -> Policy:
    loaded = load_text(textwrap.dedent(text), display="p.yaml", layer=layer)
    assert loaded.ok, loaded.issues
    return merge([loaded.layer_value()])


def rules(*items: tuple[str, str, str], default: str = "allow") -> Policy:
    """A policy of (id, when, effect) rules, all about claims."""
    lines = ["version: 1", f"default: {default}", "rules:"]
    for rule_id, when, effect in items:
        lines += [
            f"  - id: {rule_id}",
            "    actions: [claim]",
            *([f"    when: '{when}'"] if when else []),
            f"    effect: {effect}",
            f"    reason: because {rule_id}",
        ]
    return policy_of("\n".join(lines) + "\n")


def claim(**task: object) -> dict[str, object]:
    return build_request("claim", task=task, ai={"id": "claude-1", "labels": {"zone": "eu"}})


def test_deny_beats_require_approval_beats_allow() -> None:
    policy = rules(
        ("ok", "", "allow"),
        ("held", "task.priority > 5", "require_approval"),
        ("refuse", 'task.type == "bug"', "deny"),
    )
    assert evaluate(policy, claim(priority=1)).decided_by == "project:ok"
    held = evaluate(policy, claim(priority=9))
    assert (held.effect, held.decided_by) == ("require_approval", "project:held")
    denied = evaluate(policy, claim(priority=9, type="bug"))
    assert (denied.effect, denied.decided_by, denied.reason) == (
        "deny",
        "project:refuse",
        "because refuse",
    )
    assert [rule.id for rule in denied.matched] == ["ok", "held", "refuse"]


def test_the_first_rule_with_the_winning_effect_decides() -> None:
    policy = rules(("first", "", "deny"), ("second", "", "deny"))
    assert evaluate(policy, claim()).decided_by == "project:first"


def test_warn_rules_never_change_the_outcome() -> None:
    policy = rules(("careful", "", "warn"), default="require_approval")
    decision = evaluate(policy, claim())
    assert decision.effect == "require_approval" and decision.default_applied
    assert [rule.id for rule in decision.warnings] == ["careful"]
    assert decision.matched == ()


def test_the_default_applies_and_says_so() -> None:
    policy = rules(("never", "false", "deny"), default="deny")
    decision = evaluate(policy, claim())
    assert (decision.effect, decision.decided_by, decision.default_applied) == (
        "deny",
        "default",
        True,
    )
    assert decision.reason == "no rule decided; the default is deny (the project layer)"
    assert decision.default_source == "project"


def test_a_runtime_error_fails_closed() -> None:
    policy = rules(
        ("allow-prod", 'task.labels.env == "prod"', "allow"),
        ("deny-prod", 'task.labels.env == "prod"', "deny"),
        ("hold-prod", 'task.labels.env == "prod"', "require_approval"),
        ("warn-prod", 'task.labels.env == "prod"', "warn"),
    )
    decision = evaluate(policy, claim(labels={}))
    assert decision.effect == "deny" and decision.decided_by == "project:deny-prod"
    assert [rule.id for rule in decision.matched] == ["deny-prod", "hold-prod"]
    assert all(rule.error == "no such key: 'env'" for rule in decision.matched)
    assert [rule.id for rule in decision.warnings] == ["warn-prod"]
    errors = {error.id: error.counted_as_match for error in decision.errors}
    assert errors == {"allow-prod": False, "deny-prod": True, "hold-prod": True, "warn-prod": True}
    only_allow = rules(("allow-prod", 'task.labels.env == "prod"', "allow"), default="deny")
    assert evaluate(only_allow, claim(labels={})).effect == "deny"


def test_a_condition_that_is_not_boolean_is_an_error() -> None:
    policy = rules(("number", "task.priority + 1", "deny"))
    decision = evaluate(policy, claim(priority=1))
    assert decision.effect == "deny"
    assert decision.errors[0].message == "the condition gave 2, not true or false"


def test_a_helper_misuse_is_a_condition_error() -> None:
    policy = rules(("misuse", 'touches(task.priority, "src/**")', "deny"))
    decision = evaluate(policy, claim(priority=3))
    assert decision.effect == "deny"
    assert "touches() takes a list of paths first" in decision.errors[0].message


def test_only_the_rules_of_the_action_run() -> None:
    policy = policy_of(
        """\
        version: 1
        rules:
          - id: tools-only
            actions: [tool]
            when: task.labels.missing == "x"
            effect: deny
            reason: x
        """
    )
    decision = evaluate(policy, claim())
    assert decision.effect == "allow" and decision.errors == ()
    assert policy.rules_for("claim") == ()


def test_the_decision_carries_the_hashes_and_serialises_to_json() -> None:
    policy = rules(("refuse", "", "deny"))
    decision = evaluate(policy, claim())
    data = json.loads(json.dumps(decision.to_dict()))
    assert data["layer_hashes"] == {"project": policy.layers[0].hash}
    assert data["policy_hash"] == policy.hash
    assert data["matched"][0] == {
        "layer": "project",
        "id": "refuse",
        "qualified_id": "project:refuse",
        "effect": "deny",
        "reason": "because refuse",
        "error": None,
    }
    assert not decision.allowed


def test_pruned_contexts_decide_like_full_ones() -> None:
    policy = rules(
        ("a", 'get(task, "priority", 0) > 2', "deny"),
        ("b", 'task.labels.team == "api" && ai.labels.zone == "eu"', "require_approval"),
        ("c", 'task.exists(k, k == "title") && size(paths) > 0', "warn"),
        ("d", 'task["type"] == "bug" || tool.name == ""', "allow"),
    )
    request = claim(priority=3, labels={"team": "api"}, type="bug", paths=["a"])
    needs = policy.needs["claim"]
    assert needs is not None and needs["task"] is None  # get(task, ...) needs all of it
    for rule in policy.rules:
        assert rule.program.execute(context_for(request, needs)) == rule.program.execute(
            context_for(request)
        )
    pruned = rules(("b", 'task.labels.team == "api" && task["type"] == "x"', "deny"))
    assert pruned.needs["claim"] == {"task": frozenset({"labels", "type"})}


# ----------------------------------------------------------------------------- requests


def test_build_request_from_a_task_and_missing_parts() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    task = Task(
        id=7, title="t", paths=["src/**"], labels={"team": "api"}, created_at=moment,
        updated_at=moment,
    )  # fmt: skip
    request = build_request("claim", task=task, ai="claude-1")
    assert request["task"]["id"] == 7 and request["task"]["status"] == "queued"
    assert request["task"]["created_at"] == "2026-01-01T00:00:00.000000Z"
    assert request["paths"] == ["src/**"]
    assert request["ai"] == {
        "id": "claude-1",
        "labels": {},
        "capabilities": [],
        "connector": "",
        "model": "",
    }
    assert request["tool"] == {"name": "", "input": {}}
    empty = build_request("create")
    assert empty["task"]["paths"] == [] and empty["task"]["title"] == ""
    assert set(empty["task"]) == set(task.to_dict())


def test_tool_requests_take_their_paths_from_the_input(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    request = build_request(
        "tool",
        task={"paths": ["src/**"]},
        tool="Edit",
        tool_input={"file_path": str(root / "src" / "a.py"), "old_string": "x"},
        root=root,
    )
    assert request["paths"] == ["src/a.py"]
    assert request["tool"]["input"]["old_string"] == "x"
    outside = build_request("tool", tool="Read", tool_input={"file_path": "/etc/passwd"}, root=root)
    assert outside["paths"] == ["/etc/passwd"]
    assert build_request("tool", tool="Bash", tool_input={"command": "ls"})["paths"] == []


def test_an_unknown_action_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidInput, match="unknown action 'merge'; valid actions: create"):
        build_request("merge")


# ----------------------------------------------------------------------------- explanations


def test_explain_says_why_each_rule_did_or_did_not_apply() -> None:
    policy = policy_of(
        """\
        version: 1
        rules:
          - id: on-tools
            actions: [tool]
            effect: deny
            reason: x
          - id: false-one
            actions: [claim]
            when: task.priority > 100
            effect: deny
            reason: x
          - id: broken
            actions: [claim]
            when: task.labels.env == "prod"
            effect: allow
            reason: x
          - id: applies
            actions: [claim]
            when: task.priority < 100
            effect: require_approval
            reason: held for review
        """
    )
    explanation = explain(policy, claim(priority=1))
    outcomes = {item.rule.id: (item.outcome, item.counted_as_match) for item in explanation.trace}
    assert outcomes == {
        "on-tools": (ACTION_NOT_LISTED, False),
        "false-one": (CONDITION_FALSE, False),
        "broken": (CONDITION_ERROR, False),
        "applies": (MATCHED, False),
    }
    assert explanation.decision.decided_by == "project:applies"
    data = json.loads(json.dumps(explanation.to_dict()))
    assert data["rules"][2]["error"] == "no such key: 'env'"
    assert data["decision"]["effect"] == "require_approval"
