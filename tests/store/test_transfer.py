"""Moving a repository's SQLite state into PostgreSQL (`aictl init --db` where `.ai/state.db`
holds work): every row of every table arrives unchanged, the chain verifies there, a live
lease goes on working, new ids continue after the copied ones, and a database that already
holds aictl state, or a SQLite chain that does not verify, is refused with nothing changed."""

from __future__ import annotations

import pytest

from aictl.errors import InvalidInput
from aictl.services.ais import AIService
from aictl.services.audit import verify_database
from aictl.services.maintenance import move_to_postgres
from aictl.services.tasks import TaskService
from aictl.store.audit import AuditLog
from aictl.store.db import Database, connect
from aictl.store.postgres import PgDatabase
from aictl.store.task_edits import add_comment
from aictl.store.tasks import NewTask, TaskStore
from aictl.store.transfer import copy_state, rows_in, table_order
from aictl.workspace import Workspace
from tests.store.test_audit import history, tamper  # noqa: F401 (a fixture)


@pytest.fixture
def worked(history: TaskService, workspace: Workspace) -> TaskService:  # noqa: F811
    """A SQLite state with some of everything: ``history``'s tasks with dependencies, globs, a
    failure and a completion, plus a task with labels, a comment, a registered AI."""
    ais = AIService(workspace)
    ais.register("bot", connector="claude-code", check=False)
    ais.close()
    history.create('third ü "quoted"', priority=5, labels=["team=a"], paths=["docs/**"])
    add_comment(history.store, 1, "ann", "looks good")
    return history


def contents(db: Database | PgDatabase, table: str) -> list[tuple[object, ...]]:
    """Every row of ``table`` in a backend-independent order (all columns PostgreSQL writes,
    sorted as text)."""
    target_columns = {
        "decisions": "id, at, action, subject, task_id, resource, effect, rules, warnings,"
        " layers, policy_hash, input, input_digest, redacted, lease_epoch"
    }
    columns = target_columns.get(table, "*")
    rows = [tuple(row) for row in db.connection.execute(f"SELECT {columns} FROM {table}")]
    return sorted(rows, key=repr)


def test_every_row_arrives_unchanged_and_the_chain_verifies(
    worked: TaskService, pg_database: str
) -> None:
    held_token = worked.claim("w3", ttl="1h").token  # a live lease, with its path locks
    target = connect(pg_database)
    assert isinstance(target, PgDatabase)
    copied = copy_state(worked.db, target)
    tables = table_order(target)
    assert tables.index("tasks") < tables.index("task_deps")  # rows before rows naming them
    assert copied == rows_in(worked.db, tables)
    for table in ("tasks", "task_deps", "path_locks", "audit_log", "decisions", "ais"):
        assert copied[table] > 0, table
    assert copied["task_comments"] == 1
    for table in tables:
        assert contents(target, table) == contents(worked.db, table), table
    assert verify_database(AuditLog(target.connection)).ok

    store = TaskStore(target, worked.store.clock)
    store.start(held_token)  # the lease taken on SQLite holds on PostgreSQL
    assert store.complete(held_token).status == "done"
    assert store.create(NewTask(title="after the move")).id == 4  # ids go on after the copied ones
    assert verify_database(AuditLog(target.connection)).ok
    target.close()


def test_a_database_that_holds_aictl_state_is_refused_and_nothing_is_copied(
    worked: TaskService, pg_database: str
) -> None:
    target = connect(pg_database)
    assert isinstance(target, PgDatabase)
    TaskStore(target, worked.store.clock).create(NewTask(title="already here"))
    before = rows_in(target, table_order(target))
    with pytest.raises(InvalidInput, match=r"already holds aictl state \(.*1 in tasks"):
        copy_state(worked.db, target)
    assert rows_in(target, table_order(target)) == before
    target.close()


def test_the_move_keeps_the_file_and_refuses_a_chain_that_does_not_verify(
    worked: TaskService, workspace: Workspace, pg_database: str
) -> None:
    state_dir = workspace.state_dir
    tamper(worked, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    worked.close()
    with pytest.raises(InvalidInput, match="does not verify"):
        move_to_postgres(state_dir, pg_database)
    assert (state_dir / "state.db").is_file()  # still in use
    target = connect(pg_database)
    assert not any(rows_in(target, table_order(target)).values())  # nothing copied
    target.close()


def test_the_move_copies_verifies_and_keeps_the_file_aside(
    worked: TaskService, workspace: Workspace, pg_database: str
) -> None:
    state_dir = workspace.state_dir
    tasks = len(worked.list_tasks())
    worked.close()
    moved = move_to_postgres(state_dir, pg_database)
    assert moved is not None and moved.verification.ok
    assert moved.rows["tasks"] == tasks and moved.verification.rows == moved.rows["audit_log"]
    assert not (state_dir / "state.db").exists()
    assert moved.kept.parent == state_dir / "backups" and moved.kept.is_file()
    kept = Database(moved.kept)  # the file as it was, still a verifying aictl state
    assert verify_database(AuditLog(kept.connection)).ok
    kept.close()


def test_an_empty_state_is_not_moved(workspace: Workspace, pg_database: str) -> None:
    assert move_to_postgres(workspace.state_dir, pg_database) is None
    assert (workspace.state_dir / "state.db").is_file()


def test_the_move_is_refused_while_a_daemon_runs(
    worked: TaskService, workspace: Workspace, pg_database: str
) -> None:
    """A daemon would go on writing to the file after the move: refused, exit 4, nothing
    copied and the file in place."""
    from aictl.daemon.runtime import DaemonRunning
    from tests.store.test_maintenance import daemon_lock_held

    worked.close()
    with daemon_lock_held(workspace):
        with pytest.raises(DaemonRunning, match="would go on writing") as raised:
            move_to_postgres(workspace.state_dir, pg_database)
        assert raised.value.exit_code == 4
    assert (workspace.state_dir / "state.db").is_file()
    target = connect(pg_database)
    assert not any(rows_in(target, table_order(target)).values())
    target.close()
