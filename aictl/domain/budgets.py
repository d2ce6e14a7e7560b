"""Budgets: pure decisions about money (no I/O; the time and the spend are passed in).

Two limits from the policy, both in US dollars:

- ``budgets.task_usd`` caps one run. The agent is given the smaller of it and the AI's own
  ``max_cost_usd`` (Claude Code stops at ``--max-budget-usd``), and after the run its reported
  cost is checked again: a run that reached the budget fails its task for good (reason
  ``budget``), since a retry would spend the same again.
- ``budgets.daily_usd`` caps what all runs spend in one UTC day. Once today's spend reaches it,
  no run starts: the task is left as it was, and the claim is never spent.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: Rule ids recorded when a budget, not a policy rule, decides.
TASK_RULE = "aictl:budget-task"
DAILY_RULE = "aictl:budget-daily"
#: The failure reason of a task whose run reached its budget.
BUDGET_REASON = "budget"
#: The connector's reason when the agent itself stopped at its budget.
AGENT_MAX_BUDGET = "max_budget"


def format_usd(amount: float) -> str:
    """Money for people: ``$0.0128`` (four places below a dollar, where agent runs cost
    fractions of a cent), ``$25.03`` from a dollar up; never a float's binary tail such as
    ``0.012799999999999999``."""
    return f"${amount:.4f}" if abs(amount) < 1 else f"${amount:,.2f}"


def day_start(now: datetime) -> datetime:
    """Midnight UTC of ``now``'s day: the daily budget's day begins there."""
    moment = now.astimezone(UTC) if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def run_budget(task_usd: float | None, max_cost_usd: float | None) -> float | None:
    """The budget one run gets: the smaller of the policy's ``budgets.task_usd`` and the AI's
    ``max_cost_usd``; None when neither is set."""
    limits = [float(value) for value in (task_usd, max_cost_usd) if value is not None]
    return min(limits) if limits else None


def run_over_budget(
    cost_usd: float | None, budget_usd: float | None, agent_reason: str | None
) -> str | None:
    """Why a finished run counts as over its budget, or None. Over means the agent stopped at
    its budget (``max_budget``), or its reported cost reached ``budget_usd``."""
    if agent_reason == AGENT_MAX_BUDGET:
        spent = "" if cost_usd is None else f" after {format_usd(cost_usd)}"
        limit = "" if budget_usd is None else f" of {format_usd(budget_usd)}"
        return f"the agent stopped at its budget{limit}{spent}"
    if budget_usd is not None and cost_usd is not None and cost_usd >= budget_usd:
        return (
            f"the run cost {format_usd(cost_usd)}, reaching its budget of {format_usd(budget_usd)}"
        )
    return None


def daily_refusal(spent_usd: float, daily_usd: float | None) -> str | None:
    """Why no run may start today, or None: today's spend reached ``budgets.daily_usd``."""
    if daily_usd is None or spent_usd < float(daily_usd):
        return None
    return (
        f"today's spend {format_usd(spent_usd)} has reached the daily budget "
        f"{format_usd(float(daily_usd))} (budgets.daily_usd)"
    )
