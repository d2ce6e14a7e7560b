"""Policy enforcement at create, claim, approve and override, each with its decision record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aictl.clock import ManualClock
from aictl.domain.tasks import Status
from aictl.errors import (
    ApprovalRequired,
    IllegalTransition,
    InvalidInput,
    NothingReady,
    PolicyDenied,
)
from aictl.services.decisions import DecisionService
from aictl.services.tasks import TaskService
from aictl.workspace import Workspace

POLICY = """\
version: 1
default: allow
settings:
  lease_ttl: 7m
  max_attempts: 5
rules:
  - id: migrations-need-approval
    actions: [claim]
    when: 'touches(task.paths, "db/migrations/**")'
    effect: require_approval
    reason: migrations are irreversible
  - id: no-secrets-in-titles
    actions: [create]
    when: 'task.title.contains("password")'
    effect: deny
    reason: keep secrets out of tasks
  - id: interns-stay-out-of-infra
    actions: [claim]
    when: 'ai.id.startsWith("intern") && task.labels.exists(k, k == "infra")'
    effect: deny
    reason: infra work needs a senior agent
  - id: only-leads-approve
    actions: [approve]
    when: '!task.title.startsWith("lead-ok")'
    effect: deny
    reason: only tasks marked for it may be approved here
  - id: gate-create
    actions: [create]
    when: 'task.title.contains("gated")'
    effect: require_approval
    reason: gated work is approved at creation
  - id: no-huge-ttl
    actions: [override]
    when: 'true'
    effect: allow
    reason: overrides are fine
"""


@pytest.fixture
def policy_service(workspace: Workspace, clock: ManualClock) -> Iterator[TaskService]:
    (workspace.state_dir / "policy.yaml").write_text(POLICY)
    service = TaskService(workspace, clock=clock)
    yield service
    service.close()


def records(service: TaskService, **filters: object) -> list[tuple[str, int | None, str]]:
    return [
        (r.action, r.task_id, r.effect)
        for r in service.store.decisions.records(**filters)  # type: ignore[arg-type]
    ]


def test_every_create_and_claim_is_recorded(policy_service: TaskService) -> None:
    task = policy_service.create("docs", paths=["docs/**"])
    claim = policy_service.claim("claude-1")
    assert records(policy_service) == [("create", task.id, "allow"), ("claim", task.id, "allow")]
    record = policy_service.store.decisions.records(action="claim")[0]
    assert record.subject == "claude-1" and record.lease_epoch == claim.token.epoch
    assert record.rules == [] and record.policy_hash and set(record.layers) >= {"project"}
    assert record.input["task"]["paths"] == ["docs/**"] and len(record.input_digest) == 64
    kinds = [e.kind for e in policy_service.store.audit.entries(kinds=("policy",))]
    assert kinds == ["policy.decision", "policy.decision"]


def test_policy_settings_set_the_defaults(policy_service: TaskService) -> None:
    task = policy_service.create("t")
    assert task.max_attempts == 5
    assert policy_service.claim("w").task.lease_ttl_seconds == 7 * 60


def test_a_denied_create_writes_only_its_record(policy_service: TaskService) -> None:
    with pytest.raises(PolicyDenied, match="no-secrets-in-titles: keep secrets") as caught:
        policy_service.create("store the password")
    assert caught.value.exit_code == 3
    assert policy_service.list_tasks() == []
    assert records(policy_service) == [("create", None, "deny")]
    assert policy_service.store.decisions.records()[0].rules[0]["id"] == "no-secrets-in-titles"


def test_claim_next_skips_a_denied_task_and_records_both(policy_service: TaskService) -> None:
    infra = policy_service.create("infra", labels=["infra=yes"], priority=9)
    app = policy_service.create("app", priority=1)
    assert policy_service.claim("intern-1").task.id == app.id
    assert records(policy_service, action="claim") == [
        ("claim", infra.id, "deny"),
        ("claim", app.id, "allow"),
    ]
    assert policy_service.get(infra.id).status is Status.QUEUED  # still there for a senior
    assert policy_service.claim("senior-1").task.id == infra.id


def test_claim_by_id_denied_names_rule_and_reason(policy_service: TaskService) -> None:
    infra = policy_service.create("infra", labels=["infra=yes"])
    with pytest.raises(PolicyDenied, match="interns-stay-out-of-infra: infra work needs"):
        policy_service.claim("intern-1", task_id=infra.id)
    assert policy_service.get(infra.id).status is Status.QUEUED
    assert records(policy_service, action="claim") == [("claim", infra.id, "deny")]


def test_nothing_ready_says_policy_refused(policy_service: TaskService) -> None:
    policy_service.create("infra", labels=["infra=yes"])
    with pytest.raises(NothingReady, match="policy denied 1 ready task"):
        policy_service.claim("intern-1")


def test_approval_flow(policy_service: TaskService) -> None:
    migration = policy_service.create("lead-ok: add table", paths=["db/migrations/1.sql"])
    later = policy_service.create("after", depends_on=[migration.id])
    with pytest.raises(ApprovalRequired, match="needs approval") as caught:
        policy_service.claim("claude-1", task_id=migration.id)
    assert caught.value.exit_code == 3
    waiting = policy_service.get(migration.id)
    assert (waiting.status, waiting.approval) == (Status.BLOCKED, "pending")
    assert waiting.blocked_reason == (
        "awaiting approval: project:migrations-need-approval: migrations are irreversible"
    )
    with pytest.raises(NothingReady):  # claim-next does not see it either
        policy_service.claim("claude-1")
    approved = policy_service.approve(migration.id)
    assert (approved.status, approved.approval) == (Status.QUEUED, "approved")
    assert approved.approval_by == policy_service.store.actor
    claim = policy_service.claim("claude-1")
    assert claim.task.id == migration.id
    allowed = policy_service.store.decisions.records(action="claim", effect="allow")[0]
    assert [rule["id"] for rule in allowed.rules] == ["migrations-need-approval", "approval"]
    with pytest.raises(IllegalTransition, match="not awaiting approval"):
        policy_service.approve(migration.id)
    assert policy_service.get(later.id).status is Status.QUEUED


def test_a_denied_approval_is_recorded_and_changes_nothing(policy_service: TaskService) -> None:
    task = policy_service.create("add table", paths=["db/migrations/1.sql"])
    with pytest.raises(ApprovalRequired):
        policy_service.claim("claude-1", task_id=task.id)
    with pytest.raises(PolicyDenied, match="only-leads-approve"):
        policy_service.approve(task.id)
    assert policy_service.get(task.id).approval == "pending"
    assert records(policy_service, action="approve") == [("approve", task.id, "deny")]


def test_reject_cancels_and_blocks_dependents(policy_service: TaskService) -> None:
    task = policy_service.create("lead-ok: drop table", paths=["db/migrations/2.sql"])
    child = policy_service.create("child", depends_on=[task.id])
    with pytest.raises(ApprovalRequired):
        policy_service.claim("claude-1", task_id=task.id)
    with pytest.raises(InvalidInput, match="needs a --reason"):
        policy_service.reject(task.id, reason=" ")
    rejected = policy_service.reject(task.id, reason="too risky")
    assert (rejected.status, rejected.approval) == (Status.CANCELLED, "rejected")
    assert rejected.failure_reason == f"rejected by {policy_service.store.actor}: too risky"
    assert policy_service.get(child.id).status is Status.BLOCKED
    record = policy_service.store.decisions.records(action="approve")[0]
    assert record.resource["verdict"] == "reject"


def test_secrets_are_redacted_from_records(policy_service: TaskService) -> None:
    policy_service.create("deploy", description="use sk-ant-api03-abcdefghijklmnopqrstu please")
    record = policy_service.store.decisions.records()[0]
    assert "sk-ant" not in str(record.input)
    assert record.redacted == ["task.description"]


def test_an_invalid_policy_fails_closed(workspace: Workspace, clock: ManualClock) -> None:
    (workspace.state_dir / "policy.yaml").write_text("version: 1\nrules: [{id: x, effect: nope}]\n")
    service = TaskService(workspace, clock=clock)
    with pytest.raises(InvalidInput) as caught:
        service.create("anything")
    assert caught.value.exit_code == 2 and "policy.yaml" in caught.value.message
    assert service.list_tasks() == [] and service.store.decisions.records() == []
    service.close()


def test_overrides_are_decisions_and_expire(
    policy_service: TaskService, clock: ManualClock
) -> None:
    decisions = DecisionService(policy_service)
    override = decisions.set_override("lease_ttl", "20m", ai=None, reason="long job", expires="1h")
    assert override.key == "settings.lease_ttl" and override.value == "20m"
    fresh = TaskService(policy_service.workspace, clock=clock)  # policies are cached per process
    fresh.create("t")
    assert fresh.claim("w").task.lease_ttl_seconds == 20 * 60
    clock.advance(3601)
    assert decisions.overrides() == [] and len(decisions.overrides(all_of_them=True)) == 1
    assert records(policy_service, action="override") == [("override", None, "allow")]
    assert decisions.unset_override("lease_ttl", ai=None, reason="done")
    with pytest.raises(InvalidInput, match="no override"):
        decisions.unset_override("lease_ttl", ai=None, reason="again")
    kinds = [e.kind for e in policy_service.store.audit.entries(kinds=("policy.override",))]
    assert kinds == ["policy.override.set", "policy.override.unset"]
    fresh.close()


def test_a_bad_override_is_refused_before_any_record(policy_service: TaskService) -> None:
    decisions = DecisionService(policy_service)
    with pytest.raises(InvalidInput) as caught:
        decisions.set_override("lease_ttl", "soon", ai=None, reason="x", expires=None)
    assert caught.value.exit_code == 2
    with pytest.raises(InvalidInput):
        decisions.set_override("nonsense.key", "1", ai=None, reason="x", expires=None)
    assert records(policy_service) == []


def test_a_failure_between_decision_and_commit_leaves_neither(
    policy_service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = policy_service.create("t")
    before = records(policy_service)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("crash after the decision was written")

    monkeypatch.setattr("aictl.store.tasks.TaskStore._take", crash)
    with pytest.raises(RuntimeError):
        policy_service.claim("w")
    assert records(policy_service) == before
    assert policy_service.get(task.id).status is Status.QUEUED


CRASHING_CLAIM = """
import sys, time
from collections.abc import Iterator
from pathlib import Path
from aictl.services.tasks import TaskService
from aictl.store.tasks import TaskStore
from aictl.workspace import locate

marker = Path(sys.argv[1])
original = TaskStore._take

def stall(self, connection, *args):
    # the decision record is written; the claim is not: the process dies here
    marker.write_text("recorded")
    time.sleep(60)
    return original(self, connection, *args)

TaskStore._take = stall
TaskService(locate()).claim("doomed")
"""


@pytest.mark.slow
def test_sigkill_between_decision_and_commit_leaves_neither(
    policy_service: TaskService, workspace: Workspace, tmp_path: Path
) -> None:
    task = policy_service.create("t")
    before = records(policy_service)
    marker = tmp_path / "marker"
    env = {**os.environ, "AICTL_DB": str(workspace.database)}
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CRASHING_CLAIM), str(marker)],
        env=env,
        cwd=workspace.root,
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        assert process.poll() is None, "the claiming process ended early"
        time.sleep(0.05)
    assert marker.exists()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert records(policy_service) == before  # no record of a claim that never committed
    assert policy_service.get(task.id).status is Status.QUEUED
    connection = policy_service.db.connection
    assert connection.execute("SELECT count(*) FROM path_locks").fetchone()[0] == 0
    assert policy_service.store.audit.verify().ok
    assert policy_service.claim("survivor").task.id == task.id


def test_a_repeated_denial_in_the_claim_walk_is_recorded_once(
    policy_service: TaskService, workspace: Workspace, clock: ManualClock
) -> None:
    infra = policy_service.create("infra", labels=["infra=yes"])
    for _ in range(3):
        with pytest.raises(NothingReady):
            policy_service.claim("intern-1")
    assert records(policy_service, action="claim") == [("claim", infra.id, "deny")]
    with pytest.raises(PolicyDenied):  # an explicit claim by id is always recorded
        policy_service.claim("intern-1", task_id=infra.id)
    assert len(records(policy_service, action="claim")) == 2
    with pytest.raises(NothingReady):  # another subject: its own decision
        policy_service.claim("intern-2")
    assert len(records(policy_service, action="claim")) == 3
    policy = workspace.state_dir / "policy.yaml"
    policy.write_text(policy.read_text().replace("needs a senior agent", "needs a lead"))
    changed = TaskService(workspace, clock=clock)  # a new policy: a new decision
    with pytest.raises(NothingReady):
        changed.claim("intern-1")
    assert len(records(changed, action="claim")) == 4
    changed.close()


def test_cancel_then_retry_does_not_skip_a_pending_approval(policy_service: TaskService) -> None:
    """Review finding: a create-gated task, cancelled then retried, was claimable unapproved."""
    task = policy_service.create("lead-ok gated deploy")
    assert (task.status, task.approval) == (Status.BLOCKED, "pending")
    policy_service.cancel(task.id)
    retried = policy_service.retry(task.id)
    assert (retried.status, retried.approval) == (Status.BLOCKED, "pending")
    assert retried.blocked_reason == "awaiting approval: retried after cancelled"
    with pytest.raises(IllegalTransition, match="blocked"):
        policy_service.claim("w1", task_id=task.id)
    with pytest.raises(NothingReady):
        policy_service.claim("w1")
    assert policy_service.approve(task.id).status is Status.QUEUED
    assert policy_service.claim("w1").task.id == task.id


def test_reject_then_retry_asks_again(policy_service: TaskService) -> None:
    task = policy_service.create("lead-ok gated two")
    policy_service.reject(task.id, reason="no")
    retried = policy_service.retry(task.id)
    assert (retried.status, retried.approval, retried.approval_by) == (
        Status.BLOCKED,
        "pending",
        None,
    )
    with pytest.raises(NothingReady):
        policy_service.claim("w1")


def test_only_a_blocked_pending_task_can_be_approved_or_rejected(
    policy_service: TaskService,
) -> None:
    """Review finding: approving a cancelled pending task crashed on a CHECK constraint."""
    dep = policy_service.create("dep")
    gated = policy_service.create("gated: g", depends_on=[dep.id])
    policy_service.cancel(dep.id)
    policy_service.cancel(gated.id)
    for decide in (policy_service.approve, lambda i: policy_service.reject(i, reason="x")):
        with pytest.raises(IllegalTransition, match="not awaiting approval \\(it is cancelled\\)"):
            decide(gated.id)
    assert policy_service.store.decisions.records(action="approve") == []


def test_a_task_parked_for_approval_blocks_its_dependents(policy_service: TaskService) -> None:
    gated = policy_service.create("lead-ok: migrate", paths=["db/migrations/3.sql"])
    child = policy_service.create("child", depends_on=[gated.id])
    with pytest.raises(NothingReady):
        policy_service.claim("w1")
    assert policy_service.get(child.id).blocked_reason == f"dependency {gated.id} is blocked"
    policy_service.approve(gated.id)
    assert policy_service.get(child.id).status is Status.QUEUED


def test_the_policy_follows_overrides_and_files_within_one_process(
    policy_service: TaskService, workspace: Workspace, clock: ManualClock
) -> None:
    """Review finding: the policy was loaded once per process, so an override set (or expiring)
    later in the same process, e.g. in a daemon, was not seen."""
    decisions = DecisionService(policy_service)
    for title in ("a", "b", "c", "d"):
        policy_service.create(title)
    assert policy_service.claim("w").task.lease_ttl_seconds == 7 * 60
    decisions.set_override("lease_ttl", "20m", ai=None, reason="long job", expires="1h")
    assert policy_service.claim("w").task.lease_ttl_seconds == 20 * 60
    clock.advance(3601)  # the override lapses
    assert policy_service.claim("w").task.lease_ttl_seconds == 7 * 60
    policy = workspace.state_dir / "policy.yaml"
    policy.write_text(policy.read_text().replace("lease_ttl: 7m", "lease_ttl: 9m"))
    assert policy_service.claim("w").task.lease_ttl_seconds == 9 * 60


def test_overrides_for_one_ai_stay_with_that_ai(policy_service: TaskService) -> None:
    """Review finding: `settings.X --ai w1` was stored for w1 but applied to everyone."""
    decisions = DecisionService(policy_service)
    with pytest.raises(InvalidInput, match="applies to every AI"):
        decisions.set_override("settings.lease_ttl", "1m", ai="w1", reason="x", expires=None)
    with pytest.raises(InvalidInput, match="is for AI 'w2', not 'w1'"):
        decisions.set_override("ais.w2.max_turns", "3", ai="w1", reason="x", expires=None)
    stored = decisions.set_override("ais.w1.max_turns", "3", ai=None, reason="x", expires=None)
    assert (stored.key, stored.ai) == ("ais.w1.max_turns", "w1")
    assert policy_service.enforcer.policy("w1").ai_settings().get("max_turns") == 3
    assert "max_turns" not in policy_service.enforcer.policy("w2").ai_settings()
