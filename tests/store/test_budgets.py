"""Budgets enforced by the executor, with a scripted in-process connector: the task budget
given to the agent and checked after the run, the daily budget checked before the claim, and
what each run cost recorded in the state database. (The real CLI: tests/e2e/test_budgets.py.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import connectors
from aictl.domain.budgets import day_start, run_budget, run_over_budget
from aictl.errors import PolicyDenied
from aictl.services.ais import AIService
from aictl.services.executor import Executor, read_evidence
from aictl.services.tasks import TaskService
from aictl.store.postgres import PgDatabase
from aictl.store.spend import SpendStore
from aictl.workspace import Workspace
from connectors import RunRequest, RunResult
from tests.store.test_executor import Scripted, policy, use

USAGE = {"input_tokens": 1000, "output_tokens": 50}


@pytest.fixture
def service(workspace: Workspace) -> Iterator[TaskService]:
    connectors.register("scripted", Scripted)
    Scripted.running = threading.Event()
    ais = AIService(workspace)
    ais.register("bot", connector="claude-code", check=False)
    ais.close()
    service = TaskService(workspace)
    yield service
    service.close()


def costing(cost: float | None, reason: str | None = None, seen: list[RunRequest] | None = None):  # type: ignore[no-untyped-def]
    def agent(request: RunRequest, cancelled: threading.Event) -> RunResult:
        if seen is not None:
            seen.append(request)
        if reason is not None:
            return RunResult(
                status="failed", reason=reason, total_cost_usd=cost, usage=USAGE, detail="x"
            )
        return RunResult(status="success", num_turns=1, total_cost_usd=cost, usage=USAGE)

    return agent


def test_the_run_gets_the_smaller_of_the_task_budget_and_the_ais_max_cost(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[RunRequest] = []
    use(costing(0.01, seen=seen), monkeypatch)
    policy(
        service.workspace,
        "settings:\n  budgets: {task_usd: 0.5}\nais:\n  bot: {max_cost_usd: 0.25}\n",
    )
    first = service.create("t", paths=["src/**"])
    Executor(service).execute(first.id, ai="bot")
    policy(service.workspace, "settings:\n  budgets: {task_usd: 0.5}\n")
    second = service.create("t2", paths=["docs/**"])
    Executor(service).execute(second.id, ai="bot")
    assert [r.max_budget_usd for r in seen] == [0.25, 0.5]


def test_a_run_that_reached_the_task_budget_fails_for_good_with_a_decision(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(costing(0.6), monkeypatch)  # the agent said success, but it cost more than allowed
    policy(service.workspace, "settings:\n  budgets: {task_usd: 0.5}\n")
    task = service.create("t", paths=["src/**"], max_attempts=3)
    done = Executor(service).execute(task.id, ai="bot")
    assert (done.outcome, str(done.task.status), done.task.attempts) == ("failed", "failed", 1)
    assert done.reason is not None and done.reason.startswith("budget: the run cost $0.6000")
    (record,) = service.store.decisions.records(task_id=task.id, effect="deny")
    assert record.action == "execute" and record.lease_epoch == 1
    assert record.rules[0]["qualified_id"] == "aictl:budget-task"
    assert done.evidence["agent"]["reason"] == "budget"
    # the health of the AI is not the budget's business
    ais = AIService(service.workspace)
    try:
        assert ais.get("bot").health.get("consecutive_failures", 0) == 0
    finally:
        ais.close()


def test_an_agent_stopped_at_its_budget_fails_the_task_with_reason_budget(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(costing(0.2, reason="max_budget"), monkeypatch)
    policy(service.workspace, "ais:\n  bot: {max_cost_usd: 0.25}\n")
    task = service.create("t", paths=["src/**"])
    done = Executor(service).execute(task.id, ai="bot")
    assert str(done.task.status) == "failed"
    assert (done.task.failure_reason or "").startswith("budget: the agent stopped at its budget")
    (record,) = service.store.decisions.records(task_id=task.id, effect="deny")
    assert record.rules[0]["qualified_id"] == "aictl:budget-task"


def test_a_run_within_its_budget_completes_and_its_spend_is_recorded(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(costing(0.1), monkeypatch)
    policy(service.workspace, "settings:\n  budgets: {task_usd: 0.5, daily_usd: 10}\n")
    task = service.create("t", paths=["src/**"])
    assert Executor(service).execute(task.id, ai="bot").outcome == "done"
    assert service.store.decisions.records(task_id=task.id, effect="deny") == []
    totals = SpendStore(service.db).totals_by_ai()
    assert totals["bot"] == (pytest.approx(0.1), 1000, 50)


def test_the_daily_budget_refuses_the_run_before_the_claim(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[RunRequest] = []
    use(costing(0.01, seen=seen), monkeypatch)
    policy(service.workspace, "settings:\n  budgets: {daily_usd: 2}\n")
    earlier = service.create("earlier")
    SpendStore(service.db).record(
        task_id=earlier.id,
        attempt=1,
        ai="bot",
        at=service.store.clock.now(),
        cost_usd=2.0,
        input_tokens=1,
        output_tokens=1,
    )
    task = service.create("t", paths=["src/**"])
    with pytest.raises(PolicyDenied) as refused:
        Executor(service).execute(task.id, ai="bot")
    assert refused.value.exit_code == 3
    assert "$2.00" in refused.value.message and "daily budget" in refused.value.message
    after = service.get(task.id)
    assert (str(after.status), after.attempts, after.lease_epoch) == ("queued", 0, 0)
    assert seen == [] and service.locks() == []
    (record,) = service.store.decisions.records(task_id=task.id, action="execute")
    assert (record.action, record.effect, record.lease_epoch) == ("execute", "deny", None)
    assert record.rules[0]["qualified_id"] == "aictl:budget-daily"


def test_a_run_that_failed_still_counts_against_the_daily_budget(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(costing(1.5, reason="crashed"), monkeypatch)
    policy(service.workspace, "settings:\n  budgets: {daily_usd: 1}\n")
    first = service.create("t", paths=["src/**"])
    Executor(service).execute(first.id, ai="bot")
    second = service.create("t2", paths=["docs/**"])
    with pytest.raises(PolicyDenied, match=r"\$1\.50 has reached"):
        Executor(service).execute(second.id, ai="bot")


def test_spend_is_summed_from_the_start_of_the_utc_day(workspace: Workspace) -> None:
    service = TaskService(workspace)
    try:
        task = service.create("t")
        spend = SpendStore(service.db)
        now = datetime(2026, 12, 4, 10, 30, tzinfo=UTC)
        for attempt, at, cost in (
            (1, now - timedelta(hours=11), 5.0),  # yesterday
            (2, now - timedelta(hours=10), 0.25),  # today, 00:30
            (3, now, 0.5),
        ):
            spend.record(
                task_id=task.id,
                attempt=attempt,
                ai="bot",
                at=at,
                cost_usd=cost,
                input_tokens=None,
                output_tokens=None,
            )
        assert spend.spent_since(day_start(now)) == pytest.approx(0.75)
        # the same run recorded again replaces its row
        spend.record(
            task_id=task.id, attempt=3, ai="bot", at=now, cost_usd=1.0,
            input_tokens=3, output_tokens=4,
        )  # fmt: skip
        assert spend.spent_since(day_start(now)) == pytest.approx(1.25)
        if not isinstance(service.db, PgDatabase):  # SQLite's planner; PostgreSQL's has stats
            plan = service.db.connection.execute(
                "EXPLAIN QUERY PLAN SELECT total(cost_usd) FROM run_spend WHERE finished_at >= ?",
                ("x",),
            ).fetchall()
            assert "COVERING INDEX run_spend_day" in plan[0][-1]
    finally:
        service.close()


def test_budget_rules_are_pure() -> None:
    assert run_budget(None, None) is None
    assert run_budget(2.0, None) == 2.0 and run_budget(2.0, 1.0) == 1.0
    assert run_over_budget(0.49, 0.5, None) is None
    assert run_over_budget(0.5, 0.5, None) is not None  # reaching it is over
    assert run_over_budget(None, None, "max_budget") is not None
    assert day_start(datetime(2026, 1, 2, 23, 59, tzinfo=UTC)) == datetime(2026, 1, 2, tzinfo=UTC)


def test_retry_keeps_every_earlier_attempts_evidence(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    costs = iter([0.1, 0.2, 0.3])

    def agent(request: RunRequest, cancelled: threading.Event) -> RunResult:
        return RunResult(status="failed", reason="permission_denied", total_cost_usd=next(costs))

    use(agent, monkeypatch)
    task = service.create("t", paths=["src/**"])
    first = Executor(service).execute(task.id, ai="bot")
    service.retry(task.id)
    second = Executor(service).execute(task.id, ai="bot")
    assert (first.attempt, second.attempt) == (1, 2)
    number, data = read_evidence(service.workspace, task.id, 1)
    assert (number, data["agent"]["total_cost_usd"]) == (1, 0.1)
    assert read_evidence(service.workspace, task.id)[1]["agent"]["total_cost_usd"] == 0.2
    transcripts = sorted(service.workspace.state_dir.glob(f"runs/{task.id}/*/transcript.jsonl"))
    assert len(transcripts) == 2
