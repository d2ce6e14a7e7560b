"""The retry delay and the circuit breaker threshold: pure functions."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from aictl.domain.backoff import backoff_ceiling, retry_delay, should_quarantine

BASE = timedelta(seconds=30)
CAP = timedelta(minutes=10)


class Fixed:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 30), (2, 60), (3, 120), (4, 240), (5, 480), (6, 600), (7, 600), (1000, 600)],
)
def test_the_ceiling_doubles_per_attempt_up_to_the_cap(attempt: int, ceiling: int) -> None:
    assert backoff_ceiling(attempt, BASE, CAP) == timedelta(seconds=ceiling)


def test_no_attempt_or_no_base_means_no_delay() -> None:
    assert backoff_ceiling(0, BASE, CAP) == timedelta(0)
    assert backoff_ceiling(3, timedelta(0), CAP) == timedelta(0)
    assert retry_delay(0, BASE, CAP, Fixed(0.9)) == timedelta(0)


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    assert retry_delay(3, BASE, CAP, Fixed(0.0)) == timedelta(0)
    assert retry_delay(3, BASE, CAP, Fixed(0.5)) == timedelta(seconds=60)
    assert retry_delay(3, BASE, CAP, Fixed(0.999999)) < timedelta(seconds=120)
    assert retry_delay(9, BASE, CAP, Fixed(0.5)) == timedelta(minutes=5)  # half the cap


def test_a_seeded_random_gives_the_same_delays_within_bounds() -> None:
    first = [retry_delay(n, BASE, CAP, random.Random(7)) for n in range(1, 12)]
    again = [retry_delay(n, BASE, CAP, random.Random(7)) for n in range(1, 12)]
    assert first == again
    for attempt, delay in enumerate(first, start=1):
        assert timedelta(0) <= delay <= backoff_ceiling(attempt, BASE, CAP) <= CAP
    source = random.Random(1)
    delays = {retry_delay(4, BASE, CAP, source) for _ in range(50)}
    assert len(delays) > 40  # jittered, not one fixed value


def test_the_breaker_opens_at_the_threshold() -> None:
    assert not should_quarantine(2, 3)
    assert should_quarantine(3, 3) and should_quarantine(4, 3)
    assert not should_quarantine(100, 0)  # 0: never
