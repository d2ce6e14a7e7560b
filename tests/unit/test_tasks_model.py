"""The task model, its transition table, lease tokens, labels and durations (pure code)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from aictl.domain.durations import parse_duration
from aictl.domain.tasks import (
    TRANSITIONS,
    LeaseToken,
    Status,
    Task,
    check_json_text,
    check_text,
    failure_event,
    format_time,
    next_status,
    parse_label,
    sources,
)
from aictl.errors import IllegalTransition, InvalidInput, LeaseLost


def full_task() -> Task:
    moment = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    return Task(
        id=7,
        title="Add login",
        description="with tests",
        type="feature",
        priority=5,
        status=Status.RUNNING,
        labels={"area": "api", "team": "web"},
        requires=["python"],
        paths=["src/api/**"],
        depends_on=[3, 4],
        attempts=2,
        max_attempts=4,
        lease_holder="agent-1",
        lease_epoch=9,
        lease_ttl_seconds=600.0,
        lease_expires_at=moment + timedelta(minutes=10),
        heartbeat_at=moment,
        created_at=moment - timedelta(days=1),
        updated_at=moment,
        claimed_at=moment,
        started_at=moment,
        finished_at=None,
        blocked_reason=None,
        failure_reason="flaky",
        result=None,
        evidence={"diff": "+x", "tests": {"passed": 3}},
    )


def test_task_round_trips_through_json_exactly() -> None:
    task = full_task()
    assert Task.from_dict(json.loads(json.dumps(task.to_dict()))) == task


def test_json_keys_are_stable_and_times_fixed_width() -> None:
    data = full_task().to_dict()
    assert list(data)[:6] == ["id", "title", "description", "type", "priority", "status"]
    assert data["created_at"] == "2026-03-03T05:06:07.890123Z"
    whole_second = datetime(2026, 1, 1, tzinfo=UTC)
    assert format_time(whole_second) == "2026-01-01T00:00:00.000000Z"


def test_to_dict_does_not_share_mutable_fields() -> None:
    task = full_task()
    task.to_dict()["labels"]["area"] = "changed"
    assert task.labels["area"] == "api"


@pytest.mark.parametrize(
    ("status", "event", "expected"),
    [
        (Status.QUEUED, "claim", Status.CLAIMED),
        (Status.CLAIMED, "start", Status.RUNNING),
        (Status.RUNNING, "complete", Status.DONE),
        (Status.RUNNING, "requeue", Status.QUEUED),
        (Status.CLAIMED, "fail", Status.FAILED),
        (Status.FAILED, "retry", Status.QUEUED),
        (Status.BLOCKED, "unblock", Status.QUEUED),
        (Status.BLOCKED, "cancel", Status.CANCELLED),
    ],
)
def test_legal_transitions(status: Status, event: str, expected: Status) -> None:
    assert next_status(status, event) is expected


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (Status.DONE, "retry"),
        (Status.DONE, "cancel"),
        (Status.CLAIMED, "complete"),
        (Status.QUEUED, "start"),
        (Status.BLOCKED, "claim"),
        (Status.CANCELLED, "claim"),
    ],
)
def test_illegal_transitions_raise(status: Status, event: str) -> None:
    with pytest.raises(IllegalTransition, match=f"cannot {event} a {status} task"):
        next_status(status, event)


def test_done_is_terminal() -> None:
    assert all(Status.DONE not in table for table in TRANSITIONS.values())


def test_sources_match_the_table() -> None:
    assert set(sources("cancel")) == {"queued", "blocked", "claimed", "running"}
    assert sources("complete") == ("running",)


@pytest.mark.parametrize(
    ("attempts", "maximum", "retry", "event"),
    [(1, 3, True, "requeue"), (3, 3, True, "fail"), (1, 3, False, "fail"), (0, 1, True, "requeue")],
)
def test_failure_event(attempts: int, maximum: int, retry: bool, event: str) -> None:
    assert failure_event(attempts, maximum, retry=retry) == event


def test_lease_token_round_trip() -> None:
    token = LeaseToken(12, 3, "s3cr-t_x")
    assert str(token) == "12:3:s3cr-t_x"
    assert LeaseToken.parse(" 12:3:s3cr-t_x ") == token
    assert token.label == "12:3" and "s3cr" not in repr(token)
    assert token.secret_hash == hashlib.sha256(b"s3cr-t_x").hexdigest()


def test_a_token_without_a_secret_is_refused_as_contention() -> None:
    """`TASK:EPOCH` can be guessed from any audit row: it proves no claim (exit 4)."""
    with pytest.raises(LeaseLost, match="carries no secret") as caught:
        LeaseToken.parse("12:3")
    assert caught.value.exit_code == 4


@pytest.mark.parametrize("text", ["", "12", "12:", ":3", "a:b", "12:3:", "12:3:a b", "-1:2"])
def test_malformed_lease_tokens_are_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput, match="invalid lease token") as caught:
        LeaseToken.parse(text)
    assert caught.value.exit_code == 2


def test_labels() -> None:
    assert parse_label("area=api") == ("area", "api")
    assert parse_label("note=a=b") == ("note", "a=b")
    assert parse_label("empty=") == ("empty", "")
    for bad in ["noequals", "=v", "bad key=v", "-x=1"]:
        with pytest.raises(InvalidInput, match="invalid label"):
            parse_label(bad)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("2d", 172800),
        ("1.5h", 5400),
        (" 10M ", 600),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["10", "1.5", " 90 "])
def test_a_bare_number_is_refused_with_the_likely_units(text: str) -> None:
    with pytest.raises(InvalidInput, match="a duration needs a unit") as caught:
        parse_duration(text, field="--ttl")
    number = text.strip()
    assert caught.value.hint is not None
    assert caught.value.hint.startswith(f"{number}s? {number}m?")


def test_zero_is_refused_unless_it_means_at_once() -> None:
    with pytest.raises(InvalidInput, match="at least 1ms"):
        parse_duration("0s", field="--timeout")
    assert parse_duration("0s", field="--grace", allow_zero=True) == timedelta(0)


@pytest.mark.parametrize("text", ["", "0", "0s", "-5s", "5 minutes", "m", "5x", "1h-3m"])
def test_bad_durations_name_the_field(text: str) -> None:
    with pytest.raises(InvalidInput, match="invalid --ttl"):
        parse_duration(text, field="--ttl")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0.0000001s", "at least 1ms"),  # a timedelta of zero: the lease would be born expired
        ("0.0009s", "at least 1ms"),
        ("0.5ms", "at least 1ms"),
        ("9999999d", "at most 365 days"),  # beyond datetime's range once added to now
        ("366d", "at most 365 days"),
        ("9" * 400 + "s", "at most 365 days"),  # a float of infinity
    ],
)
def test_durations_are_bounded_on_the_resulting_timedelta(text: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=f"invalid --ttl '{text}': {problem}"):
        parse_duration(text, field="--ttl")


def test_duration_bounds_themselves_are_allowed() -> None:
    assert parse_duration("1ms") == timedelta(milliseconds=1)
    assert parse_duration("365d") == timedelta(days=365)


def test_format_time_converts_other_zones_to_utc() -> None:
    """Stored times are compared as text, so a time in another zone must be written in UTC."""
    plus_two = datetime(2026, 11, 21, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(plus_two) == "2026-11-21T10:00:00.000000Z"
    assert format_time(datetime(2026, 11, 21, 12, 0)) == "2026-11-21T12:00:00.000000Z"


def test_text_that_is_not_utf8_is_named() -> None:
    assert check_text("naïve ✓", "title") == "naïve ✓"
    with pytest.raises(InvalidInput, match=r"invalid title 'ab\\udcff': character 3 is not"):
        check_text("ab\udcff", "title")
    with pytest.raises(InvalidInput, match=r"invalid label 'k=\\udcff'"):
        parse_label("k=\udcff")
    evidence = {"ok": ["fine", {"deep": "\ud800"}]}
    with pytest.raises(InvalidInput, match=r"invalid evidence\.ok\[1\]\.deep"):
        check_json_text(evidence, "evidence")
    with pytest.raises(InvalidInput, match="invalid key in evidence"):
        check_json_text({"\udcff": 1}, "evidence")
