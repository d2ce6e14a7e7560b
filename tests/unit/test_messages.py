"""Words for people: money in one format wherever text shows a cost or a budget, and no
"None" where a value is missing."""

from __future__ import annotations

import pytest

from aictl.domain.budgets import daily_refusal, format_usd, run_over_budget
from aictl.services.evidence import judge_outcome
from connectors import RunResult


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (0.012799999999999999, "$0.0128"),
        (0.0, "$0.0000"),
        (0.6, "$0.6000"),
        (1.0, "$1.00"),
        (25.03125, "$25.03"),
        (1234.5, "$1,234.50"),
    ],
)
def test_amounts_print_as_dollars_without_a_binary_tail(amount: float, text: str) -> None:
    assert format_usd(amount) == text


def test_budget_messages_use_the_same_format() -> None:
    assert run_over_budget(0.6000000000000001, 0.5, None) == (
        "the run cost $0.6000, reaching its budget of $0.5000"
    )
    refusal = daily_refusal(25.031200000000002, 25)
    assert refusal is not None and "spend $25.03 has reached the daily budget $25.00" in refusal
    assert "USD" not in refusal


@pytest.mark.parametrize(
    ("code", "ended"), [(1, "exited 1"), (None, "did not finish (timed out or could not start)")]
)
def test_failed_tests_say_how_they_ended(code: int | None, ended: str) -> None:
    tests = {"status": "failed", "command": "make test", "exit_code": code}
    outcome, reason = judge_outcome(RunResult(status="success"), tests)
    assert (outcome, reason) == ("fail", f"tests failed: `make test` {ended}")
