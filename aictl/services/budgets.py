"""Budgets enforced around a run: the daily budget before the claim, the task budget after
the run (see ``aictl.domain.budgets`` for the rules themselves).

Each refusal is a Policy Decision Record of action ``execute`` with effect ``deny``, whose
first matched rule is ``aictl:budget-daily`` or ``aictl:budget-task``; the record keeps the
policy's context (its hashes and the rules that applied) so it reads like any other.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aictl.domain.budgets import (
    BUDGET_REASON,
    DAILY_RULE,
    TASK_RULE,
    daily_refusal,
    day_start,
    run_budget,
    run_over_budget,
)
from aictl.domain.tasks import LeaseToken, Task
from aictl.errors import PolicyDenied
from aictl.policy.layers import Policy
from aictl.services.tasks import TaskService
from aictl.store.decisions import Ruling
from aictl.store.spend import SpendStore
from connectors import RunResult


def budget_for_run(policy: Policy, ai_id: str) -> float | None:
    """The USD budget of one run of ``ai_id``: ``budgets.task_usd`` or the AI's
    ``max_cost_usd``, whichever is smaller."""
    return run_budget(
        policy.setting("budgets.task_usd"), policy.ai_settings(ai_id).get("max_cost_usd")
    )


def spent_today(service: TaskService) -> float:
    """USD spent today (UTC) by every run recorded in the state database."""
    return SpendStore(service.db).spent_since(day_start(service.store.clock.now()))


def daily_budget_refusal(service: TaskService, policy: Policy) -> str | None:
    """Why no run may start now (today's spend reached ``budgets.daily_usd``), or None. Costs
    one indexed query, and none when no daily budget is set."""
    daily = policy.setting("budgets.daily_usd")
    if daily is None:
        return None
    return daily_refusal(spent_today(service), float(daily))


def check_budgets(service: TaskService, task: Task, ai_id: str, policy: Policy) -> float | None:
    """Before a run of ``task`` by ``ai_id`` is claimed: refuse it when the daily budget is
    spent (see ``enforce_daily_budget``), else return the budget the run gets (USD, or None)."""
    enforce_daily_budget(service, task, ai_id, policy)
    return budget_for_run(policy, ai_id)


def account_run(
    service: TaskService,
    task: Task,
    ai_id: str,
    token: LeaseToken,
    attempt: int,
    run: RunResult,
    budget_usd: float | None,
) -> RunResult:
    """After a run: record what it cost (``record_spend``), then judge it against its budget
    (``enforce_task_budget``)."""
    record_spend(service, task, ai_id, attempt, run)
    return enforce_task_budget(service, task, ai_id, token, run, budget_usd)


def enforce_daily_budget(service: TaskService, task: Task, ai_id: str, policy: Policy) -> None:
    """Refuse to start ``task`` when today's spend reached the daily budget: a decision record
    (rule ``aictl:budget-daily``) and ``PolicyDenied`` (exit 3), the task untouched. Call it
    before the claim, so a refused run spends no attempt."""
    why = daily_budget_refusal(service, policy)
    if why is None:
        return
    ruling = _budget_ruling(service, task, ai_id, DAILY_RULE, why)
    store = service.store
    with service.db.transaction():
        store.decisions.enforce(ruling, at=store.clock.now(), task_id=task.id)
    raise PolicyDenied(
        f"task {task.id} not started: {why}",
        hint="the day's spend resets at 00:00 UTC; raise settings.budgets.daily_usd in the "
        "policy to allow more",
    )


def record_spend(
    service: TaskService, task: Task, ai_id: str, attempt: int, run: RunResult
) -> None:
    """Record what the run cost (its reported cost and tokens), whatever its outcome."""
    usage = run.usage or {}
    SpendStore(service.db).record(
        task_id=task.id,
        attempt=attempt,
        ai=ai_id,
        at=service.store.clock.now(),
        cost_usd=run.total_cost_usd,
        input_tokens=_tokens(usage.get("input_tokens")),
        output_tokens=_tokens(usage.get("output_tokens")),
    )


def enforce_task_budget(
    service: TaskService,
    task: Task,
    ai_id: str,
    token: LeaseToken,
    run: RunResult,
    budget_usd: float | None,
) -> RunResult:
    """``run`` as judged against its budget: unchanged when within it; else a non-retryable
    failure with reason ``budget``, after a decision record (rule ``aictl:budget-task``,
    fenced with the run's lease epoch) saying so."""
    why = run_over_budget(run.total_cost_usd, budget_usd, run.reason)
    if why is None:
        return run
    ruling = _budget_ruling(service, task, ai_id, TASK_RULE, why)
    store = service.store
    with service.db.transaction():
        store.decisions.enforce(
            ruling, at=store.clock.now(), task_id=task.id, lease_epoch=token.epoch
        )
    return replace(run, status="failed", reason=BUDGET_REASON, retryable=False, detail=why)


def _tokens(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _budget_ruling(service: TaskService, task: Task, ai_id: str, rule: str, why: str) -> Ruling:
    """A denial of ``execute`` by a budget, keeping the policy's context in the record."""
    ruling = service.enforcer.ruling("execute", subject=ai_id, task=task, ai=ai_id)
    fields = dict(ruling.fields)
    layer, _, name = rule.partition(":")
    fields["rules"] = [
        {
            "layer": layer,
            "id": name,
            "qualified_id": rule,
            "effect": "deny",
            "reason": why,
            "error": None,
        },
        *fields.get("rules", []),
    ]
    return Ruling("deny", f"{rule}: {why}", fields)
