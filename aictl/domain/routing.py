"""The router: which registered AI should take a task, and why. Pure: no I/O, no clock.

Rules, in the order a candidate is judged:

1. offline and quarantined AIs are skipped; a busy AI counts as at capacity;
2. the AI must have every capability the task ``requires``;
3. a task label ``ai=<id>`` pins the task to that one AI;
4. a task label ``ai.<key>=<value>`` requires the AI to have the label ``key=value``;
5. an AI whose load (claimed and running tasks it holds) has reached ``max_concurrency`` is
   at capacity;
6. every skill the task names must be enabled and resolvable for the AI (``skills``: one
   ``SkillCheck`` per AI, computed by the caller from ``aictl.domain.skills``).

Among the eligible AIs the lowest load ratio (load / max_concurrency) wins, then the lowest
load, then the smallest id. Every AI gets its reasons, chosen or not, so a person can see
why a task went where it went (``aictl route explain``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from aictl.domain.ais import AI, AIStatus
from aictl.domain.tasks import Task

if TYPE_CHECKING:
    from aictl.domain.skills import SkillCheck

PIN_LABEL = "ai"
"""A task label ``ai=<id>`` pins the task to one AI."""
REQUIRE_PREFIX = "ai."
"""A task label ``ai.<key>=<value>`` requires the AI label ``key=value``."""


@dataclass(frozen=True)
class Candidate:
    """One AI as the router saw it: whether it could take the task and why (or why not)."""

    ai: str
    status: str
    load: int
    max_concurrency: int
    eligible: bool
    chosen: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ai": self.ai,
            "status": self.status,
            "load": self.load,
            "max_concurrency": self.max_concurrency,
            "eligible": self.eligible,
            "chosen": self.chosen,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Route:
    """The router's answer: the chosen AI id (``None`` when no AI is eligible) and every
    candidate, in id order, with its reasons."""

    task_id: int
    ai: str | None
    candidates: list[Candidate]

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "ai": self.ai,
            "candidates": [candidate.to_dict() for candidate in self.candidates],
        }


def _rank(load: int, capacity: int, ai_id: str) -> tuple[Fraction, int, str]:
    return Fraction(load, capacity), load, ai_id


def _blockers(task: Task, ai: AI, load: int, skills: SkillCheck | None) -> list[str]:
    """Every reason ``ai`` cannot take ``task`` (empty when it can)."""
    reasons: list[str] = []
    if ai.status in (AIStatus.OFFLINE, AIStatus.QUARANTINED):
        reasons.append(ai.status.value)
    for capability in task.requires:
        if capability not in ai.capabilities:
            reasons.append(f"missing capability {capability}")
    pinned = task.labels.get(PIN_LABEL)
    if pinned is not None and pinned != ai.id:
        reasons.append(f"task is pinned to {pinned}")
    for key, value in sorted(task.labels.items()):
        if not key.startswith(REQUIRE_PREFIX) or len(key) == len(REQUIRE_PREFIX):
            continue
        wanted = key[len(REQUIRE_PREFIX) :]
        if ai.labels.get(wanted) != value:
            has = f"has {wanted}={ai.labels[wanted]}" if wanted in ai.labels else "has none"
            reasons.append(f"label {wanted}={value} required, {has}")
    if task.skills and skills is None:
        reasons.append("skills " + ", ".join(task.skills) + " required, not checked")
    elif skills is not None:
        reasons.extend(skills.problems)
    if ai.status is AIStatus.BUSY:
        reasons.append(f"busy (counts as at capacity), load {load}/{ai.max_concurrency}")
    elif load >= ai.max_concurrency:
        reasons.append(f"at capacity {load}/{ai.max_concurrency}")
    return reasons


def route(
    task: Task,
    ais: Sequence[AI],
    load: Mapping[str, int],
    skills: Mapping[str, SkillCheck] | None = None,
) -> Route:
    """Choose an AI for ``task``. ``load`` maps AI id to the number of claimed or running
    tasks it holds (missing ids hold none); ``skills`` maps AI id to how the task's skills
    resolve for it (a task naming skills qualifies no AI missing from it). Returns a ``Route``
    explaining every AI."""
    judged: list[tuple[AI, int, list[str]]] = []
    for ai in sorted(ais, key=lambda item: item.id):
        held = load.get(ai.id, 0)
        check = skills.get(ai.id) if skills is not None else None
        judged.append((ai, held, _blockers(task, ai, held, check)))
    eligible = [(ai, held) for ai, held, blockers in judged if not blockers]
    winner = min(
        eligible,
        key=lambda pair: _rank(pair[1], pair[0].max_concurrency, pair[0].id),
        default=None,
    )
    candidates = []
    for ai, held, blockers in judged:
        reasons = list(blockers)
        if not blockers:
            check = skills.get(ai.id) if skills is not None else None
            if task.skills and check is not None:
                chosen = ", ".join(skill.key for skill in check.chosen)
                reasons.append(f"skills ready: {chosen}")
            reasons.append(f"load {held}/{ai.max_concurrency}")
            if winner is not None and winner[0] is ai:
                reasons.append(_why_chosen(len(eligible)))
            elif winner is not None:
                reasons.append(_why_not(ai, held, *winner))
        candidates.append(
            Candidate(
                ai=ai.id,
                status=ai.status.value,
                load=held,
                max_concurrency=ai.max_concurrency,
                eligible=not blockers,
                chosen=winner is not None and winner[0] is ai,
                reasons=reasons,
            )
        )
    return Route(task.id, winner[0].id if winner else None, candidates)


def _why_chosen(eligible: int) -> str:
    if eligible == 1:
        return "chosen: the only eligible AI"
    return "chosen: lowest load ratio, then lowest load, then id"


def _why_not(ai: AI, held: int, best: AI, best_load: int) -> str:
    mine = Fraction(held, ai.max_concurrency)
    theirs = Fraction(best_load, best.max_concurrency)
    if mine != theirs:
        return (
            f"not chosen: {best.id} has a lower load ratio "
            f"({best_load}/{best.max_concurrency} against {held}/{ai.max_concurrency})"
        )
    if held != best_load:
        return f"not chosen: same load ratio as {best.id}, which holds fewer tasks ({best_load})"
    return f"not chosen: tied with {best.id}, which comes first by id"
