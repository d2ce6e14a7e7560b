"""Approvals, rejections and overrides are a person's: an agent's request is denied, recorded,
and changes nothing else (rule ``aictl:person-only``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aictl.domain.actors import AGENT_RUN_ENV, PERSON_ONLY_RULE
from aictl.domain.tasks import Status
from aictl.errors import PolicyDenied
from aictl.services.ais import AIService
from aictl.services.audit import AuditService
from aictl.services.decisions import DecisionService
from aictl.services.tasks import TaskService
from aictl.workspace import Workspace

GATED = """\
version: 1
rules:
  - id: gate
    actions: [create]
    when: 'task.title.startsWith("gated")'
    effect: require_approval
    reason: a person looks first
"""


@pytest.fixture
def gated(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[TaskService]:
    """A service acting as a person, a registered AI ``claude-1``, and task 1 awaiting approval."""
    monkeypatch.delenv(AGENT_RUN_ENV, raising=False)
    monkeypatch.setenv("AICTL_ACTOR", "user:ann")
    (workspace.state_dir / "policy.yaml").write_text(GATED)
    ais = AIService(workspace)
    ais.register("claude-1", connector="claude-code", check=False)
    ais.close()
    service = TaskService(workspace)
    task = service.create("gated deploy")
    assert (task.status, task.approval) == (Status.BLOCKED, "pending")
    yield service
    service.close()


def unchanged(service: TaskService, audit_rows: int) -> None:
    """Task 1 still awaits approval; the only new audit rows are the denial's."""
    task = service.get(1)
    assert (task.status, task.approval, task.approval_by) == (Status.BLOCKED, "pending", None)
    kinds = [entry.kind for entry in service.store.audit.entries()][audit_rows:]
    assert kinds == ["policy.decision"]
    audit = AuditService(service.workspace)
    try:
        assert audit.verify().ok
    finally:
        audit.close()


def person_only_denials(service: TaskService, action: str) -> list[dict[str, object]]:
    records = service.store.decisions.records(action=action, effect="deny")
    assert all(record.rules[0]["id"] == PERSON_ONLY_RULE for record in records)
    return [record.resource["agent"] for record in records]


def test_an_approval_from_inside_an_agent_run_is_denied_recorded_and_changes_nothing(
    gated: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = len(gated.store.audit.entries())
    monkeypatch.setenv(AGENT_RUN_ENV, "2:1")
    with pytest.raises(PolicyDenied) as caught:
        gated.approve(1)
    assert caught.value.exit_code == 3
    message = caught.value.message
    assert PERSON_ONLY_RULE in message and "AICTL_AGENT_RUN=2:1" in message
    assert "person" in (caught.value.hint or "")
    unchanged(gated, rows)
    (agent,) = person_only_denials(gated, "approve")
    assert agent["run"] == "2:1"
    (record,) = gated.store.decisions.records(action="approve")
    assert (record.task_id, record.subject, record.effect) == (1, "user:ann", "deny")
    # the same person, outside the agent run, approves it
    monkeypatch.delenv(AGENT_RUN_ENV)
    assert gated.approve(1).approval == "approved"


def test_a_rejection_from_inside_an_agent_run_is_denied(
    gated: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = len(gated.store.audit.entries())
    monkeypatch.setenv(AGENT_RUN_ENV, "2:1")
    with pytest.raises(PolicyDenied, match="the rejection of task 1"):
        gated.reject(1, reason="not needed")
    unchanged(gated, rows)
    (record,) = gated.store.decisions.records(action="approve")
    assert record.resource["verdict"] == "reject" and record.effect == "deny"


@pytest.mark.parametrize("actor", ["claude-1", "ai:claude-1"])
def test_an_actor_that_is_a_registered_ai_cannot_approve(
    gated: TaskService, monkeypatch: pytest.MonkeyPatch, actor: str
) -> None:
    rows = len(gated.store.audit.entries())
    monkeypatch.setenv("AICTL_ACTOR", actor)
    as_ai = TaskService(gated.workspace)
    try:
        with pytest.raises(PolicyDenied, match="is an AI, not a person"):
            as_ai.approve(1)
    finally:
        as_ai.close()
    unchanged(gated, rows)
    (agent,) = person_only_denials(gated, "approve")
    assert agent["actor"] == actor


def test_overrides_from_inside_an_agent_run_are_denied_and_not_set(
    gated: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    decisions = DecisionService(gated)
    decisions.set_override("lease_ttl", "20m", ai=None, reason="long job", expires=None)
    before = decisions.overrides(all_of_them=True)
    monkeypatch.setenv(AGENT_RUN_ENV, "2:1")
    with pytest.raises(PolicyDenied, match=r"setting the override 'settings\.max_attempts'"):
        decisions.set_override("max_attempts", "9", ai=None, reason="more", expires=None)
    with pytest.raises(PolicyDenied, match=r"unsetting the override 'settings\.lease_ttl'"):
        decisions.unset_override("lease_ttl", ai=None, reason="shorter")
    assert decisions.overrides(all_of_them=True) == before
    assert len(person_only_denials(gated, "override")) == 2
    assert [r.effect for r in gated.store.decisions.records(action="override")] == [
        "allow",
        "deny",
        "deny",
    ]


def test_an_invalid_policy_does_not_let_an_agent_through_nor_hide_the_attempt(
    gated: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    (gated.workspace.state_dir / "policy.yaml").write_text("version: 1\nrules: [{id: x}]\n")
    monkeypatch.setenv(AGENT_RUN_ENV, "2:1")
    with pytest.raises(PolicyDenied):
        gated.approve(1)
    (agent,) = person_only_denials(gated, "approve")
    assert agent["run"] == "2:1"
    assert gated.get(1).approval == "pending"
