"""The audit log: every state change recorded in its own transaction, and tampering detected."""

from __future__ import annotations

import itertools
import sqlite3

import pytest

from aictl.clock import ManualClock
from aictl.services.tasks import TaskService
from aictl.store.audit import GENESIS, AuditLog, Checkpoint
from aictl.store.postgres import PgDatabase


def kinds(service: TaskService, task_id: int | None = None) -> list[str]:
    """The task events (decision records have their own tests)."""
    entries = service.store.audit.entries(task_id=task_id, kinds=("task",))
    return [entry.kind for entry in entries]


def tamper(service: TaskService, sql: str, *params: object) -> None:
    """Change the log as someone with the file could: drop the guards, then edit rows."""
    connection = service.db.connection
    on_table = " ON audit_log" if isinstance(service.db, PgDatabase) else ""
    connection.execute(f"DROP TRIGGER IF EXISTS audit_log_no_update{on_table}")
    connection.execute(f"DROP TRIGGER IF EXISTS audit_log_no_delete{on_table}")
    connection.execute(sql, params)


@pytest.fixture
def history(service: TaskService, clock: ManualClock) -> TaskService:
    """A short history: two tasks, a claim, a failure, a retry, a completion."""
    first = service.create("first", paths=["src/**"])
    service.create("second", depends_on=[first.id])
    token = service.claim("w1", ttl="1m").token
    service.fail(token, reason="flaky")
    clock.advance(1)
    token = service.claim("w2", ttl="1m").token
    service.start(token)
    service.complete(token, result="ok", evidence={"diff": "+x"})
    return service


def test_every_state_change_is_recorded_with_its_actor(history: TaskService) -> None:
    entries = history.store.audit.entries(task_id=1, kinds=("task",))
    assert [(e.kind, e.actor) for e in entries] == [
        ("task.created", history.store.actor),
        ("task.claimed", "w1"),
        ("task.requeued", "w1"),
        ("task.claimed", "w2"),
        ("task.started", "w2"),
        ("task.completed", "w2"),
    ]
    assert entries[3].data["epoch"] == 2 and entries[5].data["evidence"] == ["diff"]
    assert kinds(history, 2) == ["task.created"]


def test_blocking_expiry_cancel_retry_and_links_are_recorded(
    service: TaskService, clock: ManualClock
) -> None:
    a = service.create("a", max_attempts=1)
    b = service.create("b")
    service.link(b.id, [a.id])
    service.claim("w", ttl="5s", task_id=a.id)
    clock.advance(6)
    service.sweep()
    service.retry(a.id)
    service.cancel(a.id, reason="dropped")
    service.unlink(b.id, [a.id])
    assert kinds(service, a.id) == [
        "task.created",
        "task.claimed",
        "task.lease_expired",
        "task.retried",
        "task.cancelled",
    ]
    assert kinds(service, b.id) == [
        "task.created",
        "task.linked",
        "task.blocked",
        "task.unblocked",
        "task.blocked",
        "task.unlinked",
        "task.unblocked",
    ]


def test_a_refused_change_writes_no_event(service: TaskService) -> None:
    service.create("t")
    token = service.claim("w", ttl="1m").token
    before = kinds(service)
    with pytest.raises(Exception, match="cannot complete"):
        service.complete(token)
    assert kinds(service) == before


def test_chain_links_every_row_to_the_previous(history: TaskService) -> None:
    entries = history.store.audit.entries()
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    result = history.store.audit.verify()
    assert result.ok and result.rows == len(entries) and result.head_hash == entries[-1].hash


def test_the_log_refuses_updates_and_deletes(history: TaskService) -> None:
    connection = history.db.connection
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        connection.execute("UPDATE audit_log SET actor = 'someone' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        connection.execute("DELETE FROM audit_log WHERE seq = 1")


def test_a_changed_byte_is_detected_at_its_row(history: TaskService) -> None:
    seq, data = history.db.connection.execute(
        "SELECT seq, data FROM audit_log WHERE kind = 'task.claimed' ORDER BY seq LIMIT 1"
    ).fetchone()
    changed = data.replace('"epoch":1', '"epoch":9')
    assert len(changed) == len(data) and changed != data  # exactly one byte differs
    tamper(history, "UPDATE audit_log SET data = ? WHERE seq = ?", changed, seq)
    result = history.store.audit.verify()
    assert not result.ok and result.bad_seq == seq
    assert f"row {seq} (task.claimed) was changed" in (result.problem or "")


def test_a_changed_actor_is_detected(history: TaskService) -> None:
    tamper(history, "UPDATE audit_log SET actor = 'w9' WHERE seq = 4")
    assert history.store.audit.verify().bad_seq == 4


def test_a_deleted_row_is_detected(history: TaskService) -> None:
    tamper(history, "DELETE FROM audit_log WHERE seq = 4")
    result = history.store.audit.verify()
    assert not result.ok and result.bad_seq == 4
    assert "row 4 is missing" in (result.problem or "")


def test_a_deleted_and_renumbered_row_is_detected(history: TaskService) -> None:
    tamper(history, "DELETE FROM audit_log WHERE seq = 4")
    tamper(history, "UPDATE audit_log SET seq = seq - 1 WHERE seq > 4")
    result = history.store.audit.verify()
    assert not result.ok and result.bad_seq == 4


def test_a_reordering_is_detected(history: TaskService) -> None:
    swap = (
        "UPDATE audit_log SET seq = CASE seq WHEN 2 THEN -3 WHEN 3 THEN -2 END WHERE seq IN (2, 3)"
    )
    tamper(history, swap)
    tamper(history, "UPDATE audit_log SET seq = -seq WHERE seq < 0")
    result = history.store.audit.verify()
    assert not result.ok and result.bad_seq == 2


def test_truncation_is_caught_by_a_checkpoint(history: TaskService) -> None:
    log = history.store.audit
    mark = log.checkpoint()
    assert mark == Checkpoint(mark.rows, log.entries()[-1].hash, mark.rows)
    assert log.verify(mark).ok
    tamper(history, "DELETE FROM audit_log WHERE seq = ?", mark.seq)
    assert log.verify().ok  # a shorter chain is still a valid chain...
    result = log.verify(mark)  # ...which only the checkpoint reveals
    assert not result.ok and "the tail was truncated" in (result.problem or "")


def test_a_rewritten_log_differs_from_the_checkpoint(history: TaskService) -> None:
    log = history.store.audit
    mark = Checkpoint(seq=2, hash="f" * 64, rows=2)
    assert "row 2 differs from the checkpoint" in (log.verify(mark).problem or "")


def test_filters(history: TaskService, clock: ManualClock) -> None:
    log = history.store.audit
    assert {e.kind for e in log.entries(kinds=("task.claimed",))} == {"task.claimed"}
    every = log.entries()
    assert log.entries(kinds=("task",)) == [e for e in every if e.kind.startswith("task.")]
    assert log.entries(kinds=("policy",)) == [e for e in every if e.kind.startswith("policy.")]
    assert log.entries(since=clock.now()) == [e for e in log.entries() if e.at >= clock.now()]
    assert [e.seq for e in log.entries(limit=2)] == [e.seq for e in log.entries()][-2:]


def test_empty_log_verifies(service: TaskService) -> None:
    log = AuditLog(service.db.connection)
    assert log.verify().ok and log.checkpoint() == Checkpoint(0, GENESIS, 0)


def test_a_checkpoint_of_the_empty_log_is_extended_by_any_chain(service: TaskService) -> None:
    log = service.store.audit
    mark = log.checkpoint()
    assert mark == Checkpoint(0, GENESIS, 0)
    service.create("after the checkpoint")
    assert log.verify(mark).ok
    forged = log.verify(Checkpoint(0, "f" * 64, 0))
    assert not forged.ok and "other than the genesis hash" in (forged.problem or "")
