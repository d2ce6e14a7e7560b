"""Retry backoff and the circuit breaker's threshold: pure functions, no clock, no I/O.

``retry_delay`` is exponential backoff with *full jitter*: the delay before the retry after
attempt ``n`` is drawn uniformly from ``[0, min(cap, base * 2 ** (n - 1))]``. Full jitter
spreads retries of many tasks that failed together (one API outage) instead of sending them
back in lockstep. The random source is injected so that tests are deterministic.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

DEFAULT_RETRY_BACKOFF = timedelta(seconds=30)
DEFAULT_RETRY_BACKOFF_MAX = timedelta(minutes=10)
DEFAULT_QUARANTINE_AFTER = 3


class RandomSource(Protocol):
    def random(self) -> float: ...


def backoff_ceiling(attempt: int, base: timedelta, cap: timedelta) -> timedelta:
    """The largest delay after ``attempt`` (1 = the first): ``base * 2 ** (attempt - 1)``,
    never more than ``cap`` (nor less than zero)."""
    if attempt < 1 or base <= timedelta(0) or cap <= timedelta(0):
        return timedelta(0)
    # Compare exponents rather than computing 2 ** attempt: a large attempt count must not
    # overflow timedelta.
    ratio = cap / base
    if attempt - 1 >= 63 or (1 << (attempt - 1)) >= ratio:
        return cap
    return base * (1 << (attempt - 1))


def retry_delay(attempt: int, base: timedelta, cap: timedelta, random: RandomSource) -> timedelta:
    """The delay before retrying after failed ``attempt``: uniform in ``[0, ceiling]``
    (see :func:`backoff_ceiling`), drawn from ``random.random()`` (in ``[0, 1)``)."""
    ceiling = backoff_ceiling(attempt, base, cap)
    fraction = min(max(random.random(), 0.0), 1.0)
    return ceiling * fraction


def should_quarantine(consecutive_failures: int, threshold: int) -> bool:
    """The breaker opens once the consecutive failures reach ``threshold`` (0 = never)."""
    return threshold > 0 and consecutive_failures >= threshold
