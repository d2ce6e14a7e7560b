"""`--since` for the audit log: every form ends up as a UTC moment, the zone of stored times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from aictl.errors import InvalidInput
from aictl.services.audit import parse_since

# A "now" in a zone other than UTC, to show the result never borrows it.
NOW = datetime(2026, 11, 21, 15, 0, tzinfo=timezone(timedelta(hours=5)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-21T12:00:00+02:00", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        ("2026-11-21T10:00:00Z", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),
        ("2026-11-21T10:00:00", datetime(2026, 11, 21, 10, 0, tzinfo=UTC)),  # naive: UTC
        ("2026-11-21", datetime(2026, 11, 21, 0, 0, tzinfo=UTC)),
    ],
)
def test_iso_times_are_read_as_utc(text: str, expected: datetime) -> None:
    moment = parse_since(text, NOW)
    assert moment == expected and moment.utcoffset() == timedelta(0)


def test_a_duration_counts_back_from_now() -> None:
    assert parse_since("2h", NOW) == NOW - timedelta(hours=2)


def test_a_time_before_the_first_utc_moment_is_refused() -> None:
    with pytest.raises(InvalidInput, match="invalid --since '0001-01-01T00:00:00\\+05:00'"):
        parse_since("0001-01-01T00:00:00+05:00", NOW)
