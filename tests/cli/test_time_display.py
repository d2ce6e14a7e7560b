"""One time format: ISO 8601 UTC in JSON; `YYYY-MM-DD HH:MM:SS` in UTC or local time
(AICTL_TIME) wherever people read times."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest

from tests.cli.conftest import Result


@pytest.fixture
def india(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC+05:30 all year (no daylight saving to make the offset vary)."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _first_event(aictl: Callable[..., Result]) -> tuple[datetime, str]:
    code, out, _ = aictl("audit", "log", "--json")
    assert code == 0
    at = datetime.fromisoformat(json.loads(out)[0]["at"])
    code, table, _ = aictl("audit", "log")
    assert code == 0
    return at, table


def test_tables_show_utc_by_default_and_local_time_on_request(
    aictl: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, india: None
) -> None:
    assert aictl("task", "create", "first")[0] == 0
    at, table = _first_event(aictl)
    assert "TIME (UTC)" in table and f"{at:%Y-%m-%d %H:%M:%S}" in table
    monkeypatch.setenv("AICTL_TIME", "local")
    local_at, table = _first_event(aictl)
    assert local_at == at  # JSON stays UTC
    assert "TIME (IST)" in table
    assert f"{at + timedelta(hours=5, minutes=30):%Y-%m-%d %H:%M:%S}" in table
    code, out, _ = aictl("task", "claim", "1", "--as", "worker-1")
    assert code == 0 and out.rstrip().endswith(" IST)")


def test_json_times_are_iso_8601_utc(aictl: Callable[..., Result]) -> None:
    assert aictl("task", "create", "first")[0] == 0
    code, out, _ = aictl("task", "show", "1", "--json")
    created = json.loads(out)["created_at"]
    assert code == 0 and created.endswith("Z") and datetime.fromisoformat(created).tzinfo


def test_an_unknown_time_setting_is_refused(
    aictl: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert aictl("task", "create", "first")[0] == 0
    monkeypatch.setenv("AICTL_TIME", "mars")
    code, out, err = aictl("audit", "log")
    assert code == 2 and out == ""
    assert "AICTL_TIME must be utc or local, not 'mars'" in err
