"""Backups, restores and pruning on real SQLite files, with real writer and lock-holder
processes: a backup taken during writes verifies; a tampered backup is refused with its reason
and nothing changes; pruning never removes the runs of a task that is not done or cancelled."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from aictl.clock import ManualClock
from aictl.daemon.jsonlog import JsonLog
from aictl.daemon.runtime import DaemonPaths, DaemonRunning
from aictl.services.executor import runs_dir
from aictl.services.maintenance import RestoreRefused, backup, prune, restore
from aictl.services.tasks import TaskService
from aictl.store.audit import AuditLog
from aictl.store.db import Database
from aictl.workspace import Workspace

WRITER = """
import sys
from pathlib import Path
from aictl.services.tasks import TaskService
from aictl.workspace import Workspace
root, db, stop = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
service = TaskService(Workspace(root, db))
count = 0
while not stop.exists():
    count += 1
    service.create(f"written during the backup {count}", paths=[f"pkg{count}/**"])
service.close()
"""

HOLDER = """
import sys
from pathlib import Path
from aictl.daemon.runtime import DaemonPaths, InstanceLock
from aictl.workspace import Workspace
lock = InstanceLock(DaemonPaths.of(Workspace(Path(sys.argv[1]), Path(sys.argv[2]))))
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


@contextmanager
def daemon_lock_held(workspace: Workspace) -> Iterator[None]:
    """Another process holds the clone's daemon lock (as a running daemon does) for the
    block; it lets go and is reaped at the end."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(workspace.root), str(workspace.db_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == b"held"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()


def task_count(db: Path) -> int:
    connection = sqlite3.connect(db)
    try:
        return int(connection.execute("SELECT count(*) FROM tasks").fetchone()[0])
    finally:
        connection.close()


def wait_for_tasks(db: Path, at_least: int, writer: subprocess.Popen[bytes]) -> int:
    """Poll until the writer has committed ``at_least`` tasks (it never stops by itself)."""
    while True:
        assert writer.poll() is None, "the writer process died"
        count = task_count(db)
        if count >= at_least:
            return count
        time.sleep(0.02)


@pytest.fixture
def writer(workspace: Workspace, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    stop = tmp_path / "stop"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(workspace.root), str(workspace.db_path), str(stop)]
    )
    yield process
    stop.touch()
    assert process.wait(timeout=60) == 0


def test_backups_taken_while_another_process_writes_verify(
    workspace: Workspace, writer: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    wait_for_tasks(workspace.db_path, 20, writer)
    first = backup(workspace, tmp_path / "first.db")
    later = wait_for_tasks(workspace.db_path, task_count(first.path) + 20, writer)
    second = backup(workspace, tmp_path / "second.db")
    for result in (first, second):
        assert result.verification.ok, result.verification.problem
        assert result.verification.tasks == task_count(result.path)
        # one self-contained file: rollback journal, nothing pending in a -wal beside it
        connection = sqlite3.connect(result.path)
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        connection.close()
        assert not Path(f"{result.path}-wal").exists()
    assert task_count(first.path) < task_count(second.path)
    assert task_count(second.path) >= later


def test_backup_refuses_an_existing_file_unless_forced(
    workspace: Workspace, tmp_path: Path
) -> None:
    target = tmp_path / "exists.db"
    target.write_text("keep me")
    with pytest.raises(Exception, match="exists") as raised:
        backup(workspace, target)
    assert raised.value.exit_code == 2  # type: ignore[attr-defined]
    assert target.read_text() == "keep me"
    assert backup(workspace, target, force=True).verification.ok


def snapshot(db: Path) -> tuple[list[tuple[object, ...]], int]:
    connection = sqlite3.connect(db)
    try:
        rows = connection.execute("SELECT id, title, status FROM tasks ORDER BY id").fetchall()
        head = connection.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
        return rows, int(head or 0)
    finally:
        connection.close()


def test_restore_brings_back_the_backup_and_keeps_the_replaced_database(
    workspace: Workspace, service: TaskService, tmp_path: Path
) -> None:
    service.create("before the backup")
    saved = backup(workspace, tmp_path / "b.db")
    service.create("after the backup")
    result = restore(workspace, saved.path)
    rows, _ = snapshot(workspace.db_path)
    assert [row[1] for row in rows] == ["before the backup"]
    kept, _ = snapshot(result.saved)
    assert [row[1] for row in kept] == ["before the backup", "after the backup"]
    assert result.saved.parent == workspace.state_dir / "backups"
    # the connection that was open during the restore sees the restored state
    assert [task.title for task in service.list_tasks()] == ["before the backup"]
    db = Database(workspace.db_path)
    assert AuditLog(db.connection).verify().ok
    assert db.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    assert not list((workspace.state_dir / "backups").glob(".restore-*"))


def test_a_tampered_backup_is_refused_with_the_reason_and_nothing_changes(
    workspace: Workspace, service: TaskService, tmp_path: Path
) -> None:
    service.create("genuine")
    tampered = backup(workspace, tmp_path / "t.db").path
    connection = sqlite3.connect(tampered)
    connection.execute("UPDATE tasks SET status = 'done', title = 'forged' WHERE id = 1")
    connection.commit()
    connection.close()
    service.create("made later")
    before = snapshot(workspace.db_path)
    with pytest.raises(RestoreRefused) as raised:
        restore(workspace, tampered)
    assert "does not verify" in raised.value.message
    assert "task 1 has status 'done'" in raised.value.message
    assert snapshot(workspace.db_path) == before
    assert not list((workspace.state_dir / "backups").glob("state-*.db"))
    assert not list((workspace.state_dir / "backups").glob(".restore-*"))


def test_a_file_that_is_not_a_database_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    before = snapshot(workspace.db_path)
    with pytest.raises(RestoreRefused, match="not a readable SQLite database"):
        restore(workspace, junk)
    assert snapshot(workspace.db_path) == before


def test_restore_is_refused_while_a_daemon_runs(workspace: Workspace, tmp_path: Path) -> None:
    saved = backup(workspace, tmp_path / "b.db")
    with daemon_lock_held(workspace):
        with pytest.raises(DaemonRunning, match="a daemon is running") as raised:
            restore(workspace, saved.path)
        assert raised.value.exit_code == 4
        assert "aictl daemon stop" in str(raised.value.hint)
    assert restore(workspace, saved.path).verification.ok  # once it is gone


# ---------------------------------------------------------------------------------- prune


def finish(service: TaskService, title: str, outcome: str) -> int:
    task = service.create(title)
    claim = service.claim("worker", task_id=task.id)
    service.start(claim.token)
    if outcome == "done":
        service.complete(claim.token, result="ok")
    elif outcome == "failed":
        service.fail(claim.token, reason="broken", retry=False)
    return task.id


def run_folder(workspace: Workspace, task_id: int) -> Path:
    folder = runs_dir(workspace) / str(task_id) / "1"
    folder.mkdir(parents=True)
    (folder / "evidence.json").write_text("{}")
    return folder.parent


def policy(workspace: Workspace, retention: str) -> None:
    (workspace.state_dir / "policy.yaml").write_text(
        f"version: 1\ndefault: allow\nsettings:\n  retention:\n{retention}", encoding="utf-8"
    )


def test_prune_keeps_what_evidence_needs_and_removes_old_finished_runs(
    workspace: Workspace, service: TaskService, clock: ManualClock
) -> None:
    old_done = finish(service, "old done", "done")
    clock.advance(timedelta(days=10))
    cancelled = service.create("cancelled").id
    service.cancel(cancelled, reason="not needed")
    failed = finish(service, "failed for good", "failed")
    clock.advance(timedelta(days=10))
    recent_done = finish(service, "recent done", "done")
    queued = service.create("queued").id
    running = service.create("running").id
    service.start(service.claim("worker", task_id=running).token)
    folders = {
        task_id: run_folder(workspace, task_id)
        for task_id in (old_done, cancelled, failed, recent_done, queued, running, 999)
    }
    policy(workspace, "    runs: 1\n")
    report = prune(workspace, dry_run=True, clock=clock)
    assert {v.task_id for v in report.removed} == {old_done, cancelled}
    assert all(folder.exists() for folder in folders.values())  # a dry run removes nothing
    prune(workspace, clock=clock)
    gone = {task_id for task_id, folder in folders.items() if not folder.exists()}
    assert gone == {old_done, cancelled}
    policy(workspace, "    runs: 5d\n")
    clock.advance(timedelta(days=30))
    prune(workspace, clock=clock)
    gone = {task_id for task_id, folder in folders.items() if not folder.exists()}
    assert gone == {old_done, cancelled, recent_done}
    # the runs of tasks not done or cancelled, and of unknown tasks, are never removed
    assert all(folders[task_id].exists() for task_id in (failed, queued, running, 999))
    assert AuditLog(service.db.connection).verify().ok


def test_prune_without_retention_removes_nothing(
    workspace: Workspace, service: TaskService, clock: ManualClock
) -> None:
    folder = run_folder(workspace, finish(service, "done", "done"))
    clock.advance(timedelta(days=400))
    report = prune(workspace, clock=clock)
    assert report.retention.runs is None
    assert folder.exists()


def test_prune_rotates_the_daemon_log_past_its_size(workspace: Workspace) -> None:
    log = DaemonPaths.of(workspace).log
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("x" * 3000)
    policy(workspace, "    daemon_log_mb: 0.001\n")
    assert prune(workspace, dry_run=True).log_rotated is None
    assert log.exists()
    report = prune(workspace)
    assert report.log_rotated == log.with_name("daemon.jsonl.1")
    assert report.log_rotated.read_text() == "x" * 3000
    assert not log.exists()


def test_the_daemon_journal_rotates_without_losing_a_line(tmp_path: Path) -> None:
    journal = JsonLog(tmp_path / "daemon.jsonl")
    for number in range(50):
        journal.info("test", f"line {number}")
    assert journal.rotate(10**9) is None  # under the limit
    kept = journal.rotate(100)
    journal.info("test", "after")
    journal.close()
    assert kept is not None
    assert len(kept.read_text().splitlines()) == 50
    assert (tmp_path / "daemon.jsonl").read_text().count("\n") == 1


def test_a_backup_from_an_older_schema_is_brought_up_to_date_on_restore(
    workspace: Workspace, tmp_path: Path
) -> None:
    from aictl.store.db import latest_version, migrations, split_statements

    older = tmp_path / "older.db"
    connection = sqlite3.connect(older, isolation_level=None)
    for version, script in migrations():
        if version >= latest_version():
            break
        for statement in split_statements(script):
            connection.execute(statement)
        connection.execute(f"PRAGMA user_version={version}")
    connection.close()
    result = restore(workspace, older)
    assert result.verification.ok
    db = Database(workspace.db_path)
    try:
        assert db.schema_version() == latest_version()
    finally:
        db.close()
    connection = sqlite3.connect(older)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == latest_version() - 1
    connection.close()  # the backup itself was not migrated: only its copy was


def test_a_restore_under_a_writing_process_leaves_a_chain_that_verifies(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Another process (an agent's CLI call) keeps writing through the restore: it waits for
    the restore's write lock, then goes on from the restored state."""
    service = TaskService(workspace)
    service.create("before the backup")
    service.close()
    saved = backup(workspace, tmp_path / "b.db")
    stop = tmp_path / "stop"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(workspace.root), str(workspace.db_path), str(stop)]
    )
    try:
        wait_for_tasks(workspace.db_path, 30, process)
        restore(workspace, saved.path)
        wait_for_tasks(workspace.db_path, 10, process)  # writing again, on the restored state
    finally:
        stop.touch()
        assert process.wait(timeout=60) == 0
    db = Database(workspace.db_path)
    try:
        from aictl.services.audit import verify_database

        result = verify_database(AuditLog(db.connection))
        assert result.ok, result.problem
        titles = [row[0] for row in db.connection.execute("SELECT title FROM tasks ORDER BY id")]
        assert titles[0] == "before the backup"
    finally:
        db.close()
