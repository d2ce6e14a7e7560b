"""The AI registry on a real SQLite file: CRUD, its audit events, and the database's checks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta

import pytest

from aictl.clock import ManualClock
from aictl.domain.ais import AI, AIStatus, fresh_health
from aictl.errors import Contention, InvalidInput
from aictl.services.tasks import TaskService
from aictl.store.ais import AIExists, AIHoldsLeases, AINotFound, AIStore
from aictl.workspace import Workspace


@pytest.fixture
def store(service: TaskService, clock: ManualClock) -> Iterator[AIStore]:
    yield AIStore(service.db, clock, actor="tester")


def make(ai_id: str, clock: ManualClock, **fields: object) -> AI:
    now = clock.now()
    return AI(id=ai_id, connector="claude-code", created_at=now, updated_at=now, **fields)  # type: ignore[arg-type]


def events(store: AIStore) -> list[tuple[str, dict[str, object]]]:
    return [(entry.kind, entry.data) for entry in store.audit.entries(kinds=("ai",))]


def test_register_get_and_list_round_trip(store: AIStore, clock: ManualClock) -> None:
    stored = store.register(
        make(
            "claude-1",
            clock,
            labels={"team": "web"},
            capabilities=["python", "git"],
            max_concurrency=3,
            model="sonnet",
            health=fresh_health("2.1.197 (Claude Code)", "/bin/claude"),
        )
    )
    assert store.get("claude-1") == stored
    assert stored.labels == {"team": "web"}
    assert stored.capabilities == ["python", "git"]
    assert stored.max_concurrency == 3
    assert stored.health["version"] == "2.1.197 (Claude Code)"
    assert stored.status is AIStatus.AVAILABLE
    store.register(make("claude-0", clock))
    assert [ai.id for ai in store.list_ais()] == ["claude-0", "claude-1"]
    assert events(store)[0][0] == "ai.registered"
    assert events(store)[0][1]["id"] == "claude-1"
    assert events(store)[0][1]["replaced"] is False


def test_duplicate_id_is_refused_unless_replace(store: AIStore, clock: ManualClock) -> None:
    first = store.register(make("claude-1", clock, max_concurrency=1))
    with pytest.raises(AIExists) as caught:
        store.register(make("claude-1", clock, max_concurrency=5))
    assert caught.value.exit_code == 2
    assert store.get("claude-1").max_concurrency == 1
    assert len(events(store)) == 1  # the refused write left no event
    clock.advance(60)
    replaced = store.register(make("claude-1", clock, max_concurrency=5), replace=True)
    assert replaced.max_concurrency == 5
    assert replaced.created_at == first.created_at
    assert replaced.updated_at > first.updated_at
    assert events(store)[-1][1]["replaced"] is True


def test_labels_are_added_overwritten_and_removed(store: AIStore, clock: ManualClock) -> None:
    store.register(make("a", clock, labels={"team": "api", "gpu": "yes"}))
    changed = store.set_labels("a", {"team": "web", "zone": "eu"}, ["gpu", "absent"])
    assert changed.labels == {"team": "web", "zone": "eu"}
    kind, data = events(store)[-1]
    assert kind == "ai.labelled"
    assert data["removed"] == ["gpu", "absent"]
    assert data["labels"] == {"team": "web", "zone": "eu"}


def test_status_change_is_audited_with_both_ends(store: AIStore, clock: ManualClock) -> None:
    store.register(make("a", clock))
    health = {"consecutive_failures": 3, "last_error": "boom", "version": None}
    quarantined = store.set_status("a", AIStatus.QUARANTINED, health=health)
    assert quarantined.status is AIStatus.QUARANTINED
    assert quarantined.health == health
    assert store.list_ais(status=AIStatus.QUARANTINED) == [quarantined]
    assert store.list_ais(status=AIStatus.AVAILABLE) == []
    kind, data = events(store)[-1]
    assert (kind, data["from"], data["to"]) == ("ai.status", "available", "quarantined")


def test_run_outcomes_count_and_quarantine_at_the_threshold(
    store: AIStore, clock: ManualClock
) -> None:
    store.register(make("a", clock))
    first = store.record_run("a", failed=True, error="api_error: 500", quarantine_after=3)
    assert first.health["consecutive_failures"] == 1 and first.status is AIStatus.AVAILABLE
    reset = store.record_run("a", failed=False, quarantine_after=3)
    assert reset.health["consecutive_failures"] == 0
    assert reset.health["last_error"] == "api_error: 500"
    for _ in range(2):
        store.record_run("a", failed=True, error="crashed: x", quarantine_after=3)
    assert not [kind for kind, _ in events(store) if kind == "ai.quarantined"]
    tripped = store.record_run("a", failed=True, error="crashed: y", quarantine_after=3)
    assert tripped.status is AIStatus.QUARANTINED
    assert tripped.health["consecutive_failures"] == 3
    kind, data = events(store)[-1]
    assert kind == "ai.quarantined"
    assert (data["consecutive_failures"], data["last_error"]) == (3, "crashed: y")
    again = store.record_run("a", failed=True, error="crashed: z", quarantine_after=3)
    assert again.health["consecutive_failures"] == 4
    assert [kind for kind, _ in events(store)].count("ai.quarantined") == 1


def test_quarantine_after_zero_never_trips(store: AIStore, clock: ManualClock) -> None:
    store.register(make("a", clock))
    for _ in range(5):
        ai = store.record_run("a", failed=True, error="boom", quarantine_after=0)
    assert ai.status is AIStatus.AVAILABLE and ai.health["consecutive_failures"] == 5


def test_remove_deletes_and_records(store: AIStore, clock: ManualClock) -> None:
    store.register(make("a", clock))
    store.remove("a")
    with pytest.raises(AINotFound):
        store.get("a")
    assert events(store)[-1][0] == "ai.removed"
    with pytest.raises(InvalidInput):
        store.remove("a")


def test_remove_is_refused_while_the_ai_holds_a_lease(
    store: AIStore, service: TaskService, clock: ManualClock
) -> None:
    store.register(make("claude-1", clock))
    first = service.create("one")
    second = service.create("two")
    service.create("three")
    service.claim("claude-1", task_id=first.id)
    token = service.claim("claude-1", task_id=second.id).token
    service.start(token)
    with pytest.raises(AIHoldsLeases) as caught:
        store.remove("claude-1")
    assert isinstance(caught.value, Contention) and caught.value.exit_code == 4
    assert f"tasks {first.id}, {second.id}" in caught.value.message
    assert store.get("claude-1").id == "claude-1"
    assert store.load() == {"claude-1": 2}
    service.complete(token)
    assert store.held_tasks("claude-1") == [first.id]


def test_load_counts_only_claimed_and_running_tasks(store: AIStore, service: TaskService) -> None:
    done = service.claim("w1", task_id=service.create("done").id).token
    service.start(done)
    service.complete(done)
    service.claim("w2", task_id=service.create("held").id)
    assert store.load() == {"w2": 1}


def test_an_expired_lease_is_nobodys_load(workspace: Workspace) -> None:
    """A holder that crashed leaves its task running with an expired lease: its AI must not
    stay at capacity (nor busy) until something returns the lease."""
    clock = ManualClock()
    service = TaskService(workspace, clock=clock)
    store = AIStore(service.db, clock)
    now = clock.now()
    store.register(AI(id="a", connector="claude-code", created_at=now, updated_at=now))
    service.start(service.claim("a", task_id=service.create("one").id, ttl="60s").token)
    assert store.load() == {"a": 1} and store.refresh_busy() == {"a": "busy"}
    clock.advance(timedelta(seconds=61))
    assert service.get(1).status == "running"  # nothing has returned the lease yet
    assert store.load() == {} and store.refresh_busy() == {"a": "available"}
    service.close()


def test_the_database_refuses_bad_rows(store: AIStore, clock: ManualClock) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        store.register(make("a", clock, max_concurrency=0))
    store.register(make("b", clock))
    with pytest.raises(sqlite3.IntegrityError):
        store.db.connection.execute("UPDATE ais SET status = 'sleeping' WHERE id = 'b'")
    assert store.list_ais() == [store.get("b")]


def test_busy_follows_the_load_and_never_touches_offline_or_quarantined(
    workspace: Workspace,
) -> None:
    clock = ManualClock()
    service = TaskService(workspace, clock=clock)
    store = AIStore(service.db, clock)
    now = clock.now()
    for ai_id, status in (("a", AIStatus.AVAILABLE), ("b", AIStatus.OFFLINE)):
        store.register(AI(id=ai_id, connector="claude-code", created_at=now, updated_at=now))
        store.set_status(ai_id, status)
    service.create("one")
    service.create("two")
    assert store.refresh_busy() == {"a": "available"}
    token = service.claim("a", task_id=1).token
    assert store.refresh_busy() == {"a": "busy"}  # max_concurrency 1 reached
    service.claim("b", task_id=2)  # an offline AI holding a lease stays offline
    assert store.get("b").status is AIStatus.OFFLINE
    service.release(token)
    assert store.refresh_busy() == {"a": "available"}
    service.close()
