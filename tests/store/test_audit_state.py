"""The audit chain covers the state: tampering with the database file, as a hostile user with
direct SQLite access would, is refused by the schema or named by `verify`.

Each tamper goes through a connection of its own on the real state file (not aictl's), with
the append-only triggers left in place unless the test says it drops them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from aictl.clock import ManualClock
from aictl.services.audit import AuditService
from aictl.services.tasks import TaskService
from aictl.store.audit import Verification, row_hash
from aictl.workspace import Workspace


@contextmanager
def raw(workspace: Workspace, *, drop_guards: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection of one's own to the state file, committed on leaving."""
    with closing(sqlite3.connect(workspace.db_path, isolation_level=None)) as connection:
        if drop_guards:
            for name in (
                "audit_log_no_update",
                "audit_log_no_delete",
                "audit_log_extend_head",
                "decisions_no_update",
                "decisions_no_delete",
                "decisions_no_replace",
            ):
                connection.execute(f"DROP TRIGGER IF EXISTS {name}")
        yield connection


def verify(workspace: Workspace, checkpoint: Path | None = None) -> tuple[bool, str, Verification]:
    service = AuditService(workspace)
    try:
        result = service.verify(checkpoint)
    finally:
        service.close()
    return result.ok, result.problem or "", result


@pytest.fixture
def history(service: TaskService, clock: ManualClock) -> TaskService:
    """Task 1 done with a result and evidence, task 2 failed once then queued, task 3 queued."""
    service.create("first", paths=["src/**"])
    service.create("second", paths=["docs/**"])
    service.create("third", depends_on=[1])
    token = service.claim("w1", ttl="1m", task_id=1).token
    service.start(token)
    service.complete(token, result="built it", evidence={"diff": "+x", "tests": "ok"})
    token = service.claim("w2", ttl="1m", task_id=2).token
    service.fail(token, reason="flaky")
    clock.advance(1)
    return service


def test_an_untouched_history_agrees_with_its_chain(
    history: TaskService, workspace: Workspace
) -> None:
    ok, problem, result = verify(workspace)
    assert ok, problem
    assert result.tasks == 3 and result.decisions == len(history.store.decisions.records())
    assert result.notes == ()


# ------------------------------------------------------------ finding 1: INSERT OR REPLACE


def head(connection: sqlite3.Connection) -> tuple[int, str, str, str, int | None, str, str]:
    return connection.execute(
        "SELECT seq, at, kind, actor, task_id, data, prev_hash FROM audit_log"
        " ORDER BY seq DESC LIMIT 1"
    ).fetchone()  # type: ignore[no-any-return]


def test_insert_or_replace_of_the_head_row_is_refused_by_the_schema(
    history: TaskService, workspace: Workspace
) -> None:
    """REPLACE deletes the old row without firing the DELETE trigger: the INSERT trigger must
    refuse it, even with a correctly recomputed hash."""
    with raw(workspace) as connection:
        seq, at, kind, actor, task_id, data, prev = head(connection)
        forged = json.dumps({"forged": True})
        digest = row_hash(seq, at, kind, "mallory", task_id, forged, prev)
        with pytest.raises(sqlite3.IntegrityError, match="must extend the head"):
            connection.execute(
                "INSERT OR REPLACE INTO audit_log"
                " (seq, at, kind, actor, task_id, data, prev_hash, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, at, kind, "mallory", task_id, forged, prev, digest),
            )
        with pytest.raises(sqlite3.IntegrityError, match="must extend the head"):
            connection.execute(
                "REPLACE INTO audit_log (seq, at, kind, actor, task_id, data, prev_hash, hash)"
                " VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
                (at, kind, actor, task_id, data, "0" * 64, digest),
            )
        assert head(connection)[3] == actor  # the head row is untouched
    assert verify(workspace)[0]


def test_a_row_that_does_not_extend_the_head_is_refused(
    history: TaskService, workspace: Workspace
) -> None:
    with raw(workspace) as connection:
        seq, at, kind, actor, task_id, data, _ = head(connection)
        for row_seq, prev in ((seq + 1, "f" * 64), (seq + 2, "0" * 64), (None, "0" * 64)):
            with pytest.raises(sqlite3.IntegrityError, match="must extend the head"):
                connection.execute(
                    "INSERT INTO audit_log (seq, at, kind, actor, task_id, data, prev_hash, hash)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 'x')",
                    (row_seq, at, kind, actor, task_id, data, prev),
                )


def test_decision_records_refuse_update_delete_and_replace(
    history: TaskService, workspace: Workspace
) -> None:
    with raw(workspace) as connection:
        row = connection.execute("SELECT * FROM decisions LIMIT 1").fetchone()
        for sql, params in (
            ("UPDATE decisions SET effect = 'deny' WHERE id = ?", (row[0],)),
            ("DELETE FROM decisions WHERE id = ?", (row[0],)),
            (f"INSERT OR REPLACE INTO decisions VALUES ({', '.join('?' * len(row))})", row),
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                connection.execute(sql, params)


# ------------------------------------------------------------- finding 2: the tasks table


@pytest.mark.parametrize(
    ("sql", "task", "words"),
    [
        ("UPDATE tasks SET status = 'cancelled' WHERE id = 1", 1, "status 'cancelled'"),
        ("UPDATE tasks SET result = 'forged' WHERE id = 1", 1, "has result a different value"),
        ('UPDATE tasks SET evidence = \'{"diff": ""}\' WHERE id = 1', 1, "has evidence"),
        ("UPDATE tasks SET lease_epoch = 7 WHERE id = 2", 2, "lease_epoch 7"),
        ("UPDATE tasks SET lease_holder = 'mallory' WHERE id = 1", 1, "lease_holder 'mallory'"),
        ("UPDATE tasks SET paths = '[\"**\"]' WHERE id = 2", 2, "paths ['**']"),
        ("UPDATE tasks SET title = 'other' WHERE id = 3", 3, "title 'other'"),
        ("UPDATE tasks SET priority = 9 WHERE id = 3", 3, "priority 9"),
        ("UPDATE tasks SET max_attempts = 99 WHERE id = 2", 2, "max_attempts 99"),
        ("UPDATE tasks SET approval = 'approved' WHERE id = 3", 3, "approval 'approved'"),
        ("DELETE FROM task_deps WHERE task_id = 3", 3, "depends_on []"),
    ],
)
def test_a_changed_task_row_is_named(
    history: TaskService, workspace: Workspace, sql: str, task: int, words: str
) -> None:
    with raw(workspace) as connection:
        connection.execute(sql)
    ok, problem, result = verify(workspace)
    assert not ok
    assert result.bad_task == task
    assert problem.startswith(f"task {task} has ") and words in problem
    assert "the tasks table was changed outside aictl" in problem


def test_a_done_task_set_to_cancelled_names_the_row_that_says_done(
    history: TaskService, workspace: Workspace
) -> None:
    completed = history.store.audit.entries(task_id=1, kinds=("task.completed",))[0].seq
    with raw(workspace) as connection:
        connection.execute(
            "UPDATE tasks SET status = 'cancelled', failure_reason = 'x' WHERE id = 1"
        )
    ok, problem, result = verify(workspace)
    assert not ok and result.bad_seq == completed
    assert f"(row {completed}, task.completed) implies ('done')" in problem


def test_a_task_inserted_or_deleted_outside_aictl_is_named(
    history: TaskService, workspace: Workspace
) -> None:
    with raw(workspace) as connection:
        connection.execute(
            "INSERT INTO tasks (id, title, created_at, updated_at) VALUES (9, 'sneaky', 'x', 'x')"
        )
    ok, problem, result = verify(workspace)
    assert not ok and result.bad_task == 9
    assert "task 9 ('sneaky') has no task.created row" in problem
    with raw(workspace) as connection:
        connection.execute("DELETE FROM tasks WHERE id = 9")
        connection.execute("DELETE FROM task_deps WHERE task_id = 3")
        connection.execute("DELETE FROM tasks WHERE id = 3")
    ok, problem, result = verify(workspace)
    assert not ok and result.bad_task == 3
    assert "task 3 is in the audit log but not in the tasks table" in problem


def test_every_difference_is_counted(history: TaskService, workspace: Workspace) -> None:
    with raw(workspace) as connection:
        connection.execute("UPDATE tasks SET priority = 5")
    ok, problem, _ = verify(workspace)
    assert not ok and "(2 more difference(s))" in problem


# ------------------------------------------------------------- finding 2: decision records


def test_a_decision_effect_changed_with_the_guards_dropped_is_named(
    history: TaskService, workspace: Workspace
) -> None:
    record = history.store.decisions.records()[0]
    event = next(
        e for e in history.store.audit.entries(kinds=("policy.decision",))
        if e.data["decision"] == record.id
    )  # fmt: skip
    assert "digest" in event.data
    with raw(workspace, drop_guards=True) as connection:
        connection.execute("UPDATE decisions SET effect = 'deny' WHERE id = ?", (record.id,))
    ok, problem, result = verify(workspace)
    assert not ok
    assert result.bad_decision == record.id and result.bad_seq == event.seq
    assert f"decision {record.id} differs from its audit row {event.seq}" in problem
    assert "its effect is now 'deny'" in problem


def test_a_decision_deleted_or_inserted_outside_aictl_is_named(
    history: TaskService, workspace: Workspace
) -> None:
    record = history.store.decisions.records()[-1]
    with raw(workspace, drop_guards=True) as connection:
        row = connection.execute("SELECT * FROM decisions WHERE id = ?", (record.id,)).fetchone()
        connection.execute("DELETE FROM decisions WHERE id = ?", (record.id,))
    ok, problem, result = verify(workspace)
    assert not ok and result.bad_decision == record.id
    assert "is missing from the decision records" in problem
    with raw(workspace, drop_guards=True) as connection:
        connection.execute(f"INSERT INTO decisions VALUES ({', '.join('?' * len(row))})", row)
        connection.execute(
            f"INSERT INTO decisions VALUES ({', '.join('?' * len(row))})", ("d-forged", *row[1:])
        )
    ok, problem, result = verify(workspace)
    assert not ok and result.bad_decision == "d-forged"
    assert "decision d-forged is not in the audit log" in problem


# ------------------------------------------------------------- older rows, checked in part


def test_rows_written_before_the_new_fields_are_checked_as_far_as_they_go(
    history: TaskService, workspace: Workspace
) -> None:
    """Strip the fields added for the replay from the log (as an older aictl wrote it), then
    rebuild the chain: what the old rows carry is still compared, and the rest is noted."""
    with raw(workspace, drop_guards=True) as connection:
        rows = connection.execute(
            "SELECT seq, at, kind, actor, task_id, data FROM audit_log ORDER BY seq"
        ).fetchall()
        prev = "0" * 64
        for seq, at, kind, actor, task_id, data in rows:
            values = json.loads(data)
            for name in ("digest", "evidence_digest", "max_attempts"):
                values.pop(name, None)
            text = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            digest = row_hash(seq, at, kind, actor, task_id, text, prev)
            connection.execute(
                "UPDATE audit_log SET data = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (text, prev, digest, seq),
            )
            prev = digest
    ok, problem, result = verify(workspace)
    assert ok, problem
    notes = "\n".join(result.notes)
    assert "evidence of 1 task(s) not compared" in notes
    assert "max_attempts of 3 task(s) not compared" in notes
    assert "decision record(s) predate decision digests" in notes
    with raw(workspace, drop_guards=True) as connection:
        connection.execute("UPDATE decisions SET effect = 'deny'")
        connection.execute("UPDATE tasks SET status = 'failed' WHERE id = 1")
    ok, problem, result = verify(workspace)
    assert not ok and "has effect 'deny' but its audit row" in problem
    assert result.bad_decision is not None


def test_verify_reads_one_snapshot_while_another_connection_writes(
    workspace: Workspace, clock: ManualClock
) -> None:
    """The state is compared at the same commit as the chain: a writer committing task changes
    between the two reads must not look like tampering."""
    stop = threading.Event()
    errors: list[BaseException] = []
    done = [0]

    def write() -> None:
        writer = TaskService(workspace, clock=clock)
        try:
            while not stop.is_set():
                task = writer.create("busy", paths=[f"w/{task_count()}/**"])
                token = writer.claim("w", ttl="1m", task_id=task.id).token
                writer.start(token)
                writer.complete(token, result="r", evidence={"n": task.id})
                done[0] += 1
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            writer.close()

    def task_count() -> int:
        return done[0]

    thread = threading.Thread(target=write)
    thread.start()
    outcomes = []
    try:
        # verify while the writer works: at least 30 times, and across 20 of its cycles
        while (len(outcomes) < 30 or done[0] < 20) and not errors and len(outcomes) < 5000:
            outcomes.append(verify(workspace))
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert done[0] >= 20
    assert all(ok for ok, _, _ in outcomes), [problem for ok, problem, _ in outcomes if not ok]
