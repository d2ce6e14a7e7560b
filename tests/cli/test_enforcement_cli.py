"""Enforcement through the CLI: exit 3 for a denial, approvals, decision records, overrides."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from aictl.store.decisions import DecisionStore
from aictl.workspace import Workspace
from tests.cli.conftest import Result

POLICY = """\
version: 1
rules:
  - id: gate-migrations
    actions: [claim]
    when: 'touches(task.paths, "db/**")'
    effect: require_approval
    reason: a person reviews schema changes
  - id: no-drop
    actions: [create]
    when: 'task.title.startsWith("drop")'
    effect: deny
    reason: dropping is not done by agents
  - id: frozen-ttl
    actions: [override]
    when: 'tool.name == "" && true'
    effect: allow
    reason: overrides allowed
"""


@pytest.fixture
def aictl(
    aictl: Callable[..., Result], workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """The runner, in a repository with the policy above, acting as alice."""
    (workspace.state_dir / "policy.yaml").write_text(POLICY)
    monkeypatch.setenv("AICTL_ACTOR", "alice")
    return aictl


def test_denied_create_exits_3_naming_rule_and_reason(aictl: Callable[..., Result]) -> None:
    code, out, err = aictl("task", "create", "drop the users table")
    assert code == 3 and out == ""
    assert "Error: policy denies creating task 'drop the users table'" in err
    assert "project:no-drop: dropping is not done by agents" in err
    denied = json.loads(aictl("policy", "decisions", "--effect", "deny", "--json")[1])
    assert [(d["action"], d["subject"], d["task_id"]) for d in denied] == [
        ("create", "alice", None)
    ]


def test_approval_through_the_cli(aictl: Callable[..., Result]) -> None:
    aictl("task", "create", "add column", "--path", "db/schema.sql")
    code, _, err = aictl("task", "claim", "1", "--as", "claude-1")
    assert code == 3 and "task 1 needs approval" in err and "aictl task approve 1" in err
    shown = json.loads(aictl("task", "show", "1", "--json")[1])
    assert (shown["status"], shown["approval"]) == ("blocked", "pending")
    code, out, _ = aictl("task", "approve", "1")
    assert code == 0 and out == "Task 1 approved: queued\n"
    assert aictl("task", "claim", "--as", "claude-1", "-q")[1].startswith("1:1:")
    assert aictl("task", "approve", "1")[0] == 2
    table = aictl("policy", "decisions", "--task", "1")[1]
    assert "require_approval" in table and "project:gate-migrations" in table
    ids = aictl("policy", "decisions", "-q", "--ai", "claude-1")[1].split()
    assert len(ids) == 2 and all(i.startswith("d-") for i in ids)


def test_an_approval_from_inside_an_agent_run_exits_3_and_the_task_stays_blocked(
    aictl: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    aictl("task", "create", "add column", "--path", "db/schema.sql")
    aictl("task", "claim", "1", "--as", "claude-1")
    monkeypatch.setenv("AICTL_AGENT_RUN", "4:1")
    code, out, err = aictl("task", "approve", "1")
    assert code == 3 and out == ""
    assert "aictl:person-only" in err and "AICTL_AGENT_RUN=4:1" in err
    assert "Hint:" in err and "outside any agent run" in err
    assert aictl("task", "reject", "1", "--reason", "no")[0] == 3
    shown = json.loads(aictl("task", "show", "1", "--json")[1])
    assert (shown["status"], shown["approval"]) == ("blocked", "pending")
    denied = json.loads(aictl("policy", "decisions", "--effect", "deny", "--json")[1])
    assert [(d["action"], d["rules"][0]["id"]) for d in denied] == [
        ("approve", "aictl:person-only"),
        ("approve", "aictl:person-only"),
    ]
    assert aictl("audit", "verify")[0] == 0


def test_reject_through_the_cli(aictl: Callable[..., Result]) -> None:
    aictl("task", "create", "add column", "--path", "db/schema.sql")
    aictl("task", "claim", "1", "--as", "claude-1")
    code, _, err = aictl("task", "reject", "1")
    assert code == 2 and "needs a --reason" in err
    code, out, _ = aictl("task", "reject", "1", "--reason", "not now", "--json")
    assert code == 0 and json.loads(out)["failure_reason"] == "rejected by alice: not now"


def test_overrides_through_the_cli(aictl: Callable[..., Result]) -> None:
    code, out, _ = aictl(
        "policy", "override", "set", "lease_ttl", "45m", "--reason", "slow", "--json"
    )
    assert code == 0 and json.loads(out)["key"] == "settings.lease_ttl"
    code, out, _ = aictl(
        "policy", "override", "set", "max_turns", "9", "--ai", "claude-1", "--reason", "cap it"
    )
    assert code == 0 and out.startswith("override ais.claude-1.max_turns = 9")
    listed = json.loads(aictl("policy", "override", "list", "--json")[1])
    assert {(o["key"], o["ai"]) for o in listed} == {
        ("settings.lease_ttl", ""),
        ("ais.claude-1.max_turns", "claude-1"),
    }
    aictl("task", "create", "t")
    claim = json.loads(aictl("task", "claim", "--as", "w", "--json")[1])
    assert claim["task"]["lease_ttl_seconds"] == 45 * 60
    code, _, err = aictl("policy", "override", "set", "lease_ttl", "later", "--reason", "x")
    assert code == 2 and "<overrides>" in err
    code, _, err = aictl("policy", "override", "set", "lease_ttl", "5m")
    assert code == 2 and "needs a --reason" in err
    assert aictl("policy", "override", "unset", "lease_ttl", "--reason", "done")[0] == 0
    assert aictl("policy", "override", "unset", "lease_ttl")[0] == 2
    overrides = [
        d
        for d in json.loads(aictl("policy", "decisions", "--json")[1])
        if d["action"] == "override"
    ]
    assert len(overrides) == 3 and all(d["effect"] == "allow" for d in overrides)


def test_show_and_explain_see_the_overrides_enforcement_sees(aictl: Callable[..., Result]) -> None:
    before = json.loads(aictl("policy", "show", "--effective", "--json")[1])
    aictl("policy", "override", "set", "lease_ttl", "45m", "--reason", "slow")
    after = json.loads(aictl("policy", "show", "--effective", "--json")[1])
    assert after["hash"] != before["hash"]
    aictl("task", "create", "t")
    aictl("task", "claim", "--as", "w")
    recorded = json.loads(aictl("policy", "decisions", "--action", "claim", "--json")[1])
    assert recorded[0]["policy_hash"] == after["hash"]
    explained = json.loads(
        aictl("policy", "explain", "--task", "1", "--ai", "w", "--action", "claim", "--json")[1]
    )
    assert explained["decision"]["policy_hash"] == after["hash"]


def test_unset_says_so_when_another_process_removed_the_override_first(
    aictl: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The override exists when the service looks it up, and is gone by the DELETE."""
    aictl("policy", "override", "set", "lease_ttl", "45m", "--reason", "slow")
    original = DecisionStore.unset_override

    def raced(self: DecisionStore, **fields: Any) -> bool:
        self.connection.execute("DELETE FROM policy_overrides")  # the other process
        return original(self, **fields)

    monkeypatch.setattr(DecisionStore, "unset_override", raced)
    code, out, err = aictl("policy", "override", "unset", "lease_ttl", "--reason", "done")
    assert (code, out) == (2, "")
    assert "Error: no override 'lease_ttl': it was removed meanwhile" in err
    unsets = [
        e for e in json.loads(aictl("audit", "log", "--json")[1]) if e["kind"].endswith("unset")
    ]
    assert unsets == []
