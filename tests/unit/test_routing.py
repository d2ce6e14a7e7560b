"""The router: every eligibility rule, the tie-breaks, and the reasons for every AI."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aictl.domain.ais import AI, AIStatus
from aictl.domain.routing import Route, route
from aictl.domain.tasks import Task

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def task(labels: dict[str, str] | None = None, requires: list[str] | None = None) -> Task:
    return Task(
        id=7,
        title="t",
        labels=labels or {},
        requires=requires or [],
        created_at=NOW,
        updated_at=NOW,
    )


def ai(
    ai_id: str,
    *,
    status: AIStatus = AIStatus.AVAILABLE,
    capabilities: list[str] | None = None,
    labels: dict[str, str] | None = None,
    max_concurrency: int = 1,
) -> AI:
    return AI(
        id=ai_id,
        connector="claude-code",
        status=status,
        capabilities=capabilities or [],
        labels=labels or {},
        max_concurrency=max_concurrency,
        created_at=NOW,
        updated_at=NOW,
    )


def reasons(result: Route, ai_id: str) -> list[str]:
    return next(c.reasons for c in result.candidates if c.ai == ai_id)


@pytest.mark.parametrize(
    ("status", "reason"),
    [(AIStatus.OFFLINE, "offline"), (AIStatus.QUARANTINED, "quarantined")],
)
def test_offline_and_quarantined_ais_are_skipped(status: AIStatus, reason: str) -> None:
    result = route(task(), [ai("a", status=status), ai("b")], {})
    assert result.ai == "b"
    assert reasons(result, "a") == [reason]


def test_busy_counts_as_at_capacity() -> None:
    result = route(task(), [ai("a", status=AIStatus.BUSY, max_concurrency=4)], {})
    assert result.ai is None
    assert reasons(result, "a") == ["busy (counts as at capacity), load 0/4"]


def test_every_required_capability_is_needed() -> None:
    ais = [ai("a", capabilities=["python"]), ai("b", capabilities=["python", "rust"])]
    result = route(task(requires=["python", "rust"]), ais, {})
    assert result.ai == "b"
    assert reasons(result, "a") == ["missing capability rust"]


def test_ai_label_requirement_names_what_the_ai_has() -> None:
    ais = [ai("a", labels={"team": "api"}), ai("b"), ai("c", labels={"team": "web"})]
    result = route(task(labels={"ai.team": "web"}), ais, {})
    assert result.ai == "c"
    assert reasons(result, "a") == ["label team=web required, has team=api"]
    assert reasons(result, "b") == ["label team=web required, has none"]


def test_other_task_labels_do_not_constrain() -> None:
    result = route(task(labels={"team": "web", "ai.": "x"}), [ai("a")], {})
    assert result.ai == "a"


def test_pin_label_chooses_one_ai_even_when_others_are_idle() -> None:
    ais = [ai("a"), ai("b", max_concurrency=2)]
    result = route(task(labels={"ai": "b"}), ais, {"b": 1})
    assert result.ai == "b"
    assert reasons(result, "a") == ["task is pinned to b"]


def test_pinned_ai_at_capacity_leaves_the_task_unrouted() -> None:
    result = route(task(labels={"ai": "b"}), [ai("a"), ai("b")], {"b": 1})
    assert result.ai is None
    assert reasons(result, "b") == ["at capacity 1/1"]


def test_an_ai_at_capacity_is_not_eligible() -> None:
    result = route(task(), [ai("a", max_concurrency=2), ai("b")], {"a": 2, "b": 0})
    assert result.ai == "b"
    assert reasons(result, "a") == ["at capacity 2/2"]


def test_lowest_load_ratio_wins_over_lowest_load() -> None:
    # a: 1/4 = 0.25, b: 0/1 = 0 -> b; then a: 2/4 = 0.5 against b: 1/3 = 0.33 -> b
    ais = [ai("a", max_concurrency=4), ai("b", max_concurrency=3)]
    assert route(task(), ais, {"a": 1}).ai == "b"
    result = route(task(), ais, {"a": 2, "b": 1})
    assert result.ai == "b"
    assert reasons(result, "a") == [
        "load 2/4",
        "not chosen: b has a lower load ratio (1/3 against 2/4)",
    ]
    assert reasons(result, "b")[0] == "load 1/3"


def test_equal_ratio_then_lowest_load() -> None:
    ais = [ai("a", max_concurrency=4), ai("b", max_concurrency=2)]
    result = route(task(), ais, {"a": 2, "b": 1})
    assert result.ai == "b"
    assert reasons(result, "a")[-1] == (
        "not chosen: same load ratio as b, which holds fewer tasks (1)"
    )


def test_full_tie_goes_to_the_smallest_id() -> None:
    result = route(task(), [ai("zeta"), ai("alpha"), ai("mid")], {})
    assert result.ai == "alpha"
    assert reasons(result, "zeta")[-1] == "not chosen: tied with alpha, which comes first by id"
    assert [c.ai for c in result.candidates] == ["alpha", "mid", "zeta"]


def test_every_ai_gets_reasons_and_all_blockers_are_listed() -> None:
    ais = [
        ai("a", status=AIStatus.OFFLINE, labels={"team": "api"}),
        ai("b", capabilities=["python"], labels={"team": "web"}),
    ]
    result = route(task(labels={"ai.team": "web"}, requires=["python"]), ais, {})
    assert reasons(result, "a") == [
        "offline",
        "missing capability python",
        "label team=web required, has team=api",
    ]
    assert reasons(result, "b") == ["load 0/1", "chosen: the only eligible AI"]
    chosen = [c for c in result.candidates if c.chosen]
    assert [c.ai for c in chosen] == ["b"] and chosen[0].eligible


def test_no_ais_routes_nowhere() -> None:
    assert route(task(), [], {}).to_dict() == {"task_id": 7, "ai": None, "candidates": []}


def test_load_of_unknown_holders_is_ignored() -> None:
    assert route(task(), [ai("a")], {"someone-else": 9}).ai == "a"
