"""What only the PostgreSQL backend has: choosing it by URL, its schema and its migrations, its
refusals, and the dialect translation. (The store's behaviour on it is proved by the store's
own tests, run on both backends: see conftest.py.)"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from aictl.cli import run
from aictl.clock import ManualClock, SystemClock
from aictl.daemon.runtime import DaemonPaths, DaemonRunning, InstanceLock
from aictl.daemon.scheduler import Daemon
from aictl.domain.tasks import format_time
from aictl.errors import (
    DatabaseUnusable,
    IllegalTransition,
    InvalidInput,
    NotAnAictlDatabase,
    NothingReady,
)
from aictl.services import maintenance
from aictl.services.tasks import TaskService
from aictl.store import postgres
from aictl.store.audit import AuditLog
from aictl.store.dashboard import data_version
from aictl.store.db import connect, latest_version, shown
from aictl.store.decisions import Ruling
from aictl.store.postgres import PgDatabase, WorkListener, translate
from aictl.store.tasks import FIRST_READY_PAGE, NewTask, TaskStore
from aictl.workspace import CONFIG, STATE_DIR, initialise, locate
from tests.gitrepo import git_init


def test_translation_binds_marks_outside_quotes_and_doubles_every_percent() -> None:
    assert translate("SELECT a FROM t WHERE b = ? AND c LIKE 'x%?'") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%?'"
    )
    assert translate('SELECT "a?b", ? % 2') == 'SELECT "a?b", %s %% 2'
    assert translate("SELECT id FROM tasks INDEXED BY tasks_ready WHERE x = ?") == (
        "SELECT id FROM tasks WHERE x = %s"
    )


def test_both_backends_reach_the_same_schema_version() -> None:
    """A migration added for SQLite needs its PostgreSQL twin with the same number."""
    assert postgres.migrations()[-1][0] == latest_version()


def test_a_password_never_reaches_a_message() -> None:
    assert shown("postgresql://ann:secret@db:5432/aictl") == "postgresql://ann:***@db:5432/aictl"
    assert shown(Path("/x/.ai/state.db")) == "/x/.ai/state.db"


def test_connect_picks_the_backend_by_url(pg_database: str, tmp_path: Path) -> None:
    database = connect(pg_database)
    try:
        assert isinstance(database, PgDatabase)
        assert database.schema_version() == latest_version()
        tables = {
            row[0]
            for row in database.connection.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema()"
            )
        }
        assert {"tasks", "path_locks", "audit_log", "decisions", "aictl_schema"} <= tables
    finally:
        database.close()
    sqlite = connect(tmp_path / "state.db")
    try:
        assert not isinstance(sqlite, PgDatabase)
    finally:
        sqlite.close()


def test_another_programs_database_is_refused_and_left_alone(pg_database: str) -> None:
    with psycopg.connect(pg_database, autocommit=True) as other:
        other.execute("CREATE TABLE invoices (id integer)")
    with pytest.raises(NotAnAictlDatabase, match=r"another program's tables \(invoices\)"):
        connect(pg_database)
    with psycopg.connect(pg_database) as other:
        found = other.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    assert found == [("invoices",)]


def test_a_schema_from_a_newer_aictl_is_refused(pg_database: str) -> None:
    connect(pg_database).close()
    with psycopg.connect(pg_database, autocommit=True) as admin:
        admin.execute("INSERT INTO aictl_schema (version) VALUES (9999)")
    with pytest.raises(DatabaseUnusable, match="schema version 9999, newer than this aictl"):
        connect(pg_database)


def test_an_unreachable_server_is_named_without_its_password() -> None:
    url = "postgresql://ann:secret@127.0.0.1:1/none?connect_timeout=2"
    with pytest.raises(DatabaseUnusable, match="cannot connect") as caught:
        connect(url)
    assert "secret" not in caught.value.message
    assert caught.value.exit_code == 1


def test_init_against_an_unreachable_server_creates_nothing(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    with pytest.raises(DatabaseUnusable, match="cannot connect"):
        initialise(repo, database="postgresql://ann@127.0.0.1:1/none?connect_timeout=2")
    assert not (repo / STATE_DIR).exists()


def _open_and_count(url: str) -> int:
    database = connect(url)
    try:
        return int(database.connection.execute("SELECT count(*) FROM aictl_schema").fetchone()[0])
    finally:
        database.close()


def test_processes_opening_a_new_database_together_migrate_it_once(pg_database: str) -> None:
    # close and join, never Pool's __exit__: that terminates the workers with SIGTERM, and
    # coverage's SIGTERM handler in a worker (sigterm = true) was seen to hang it in CI
    pool = multiprocessing.get_context("spawn").Pool(4)
    try:
        counts = pool.map_async(_open_and_count, [pg_database] * 4).get(timeout=120)
    finally:
        pool.close()
        pool.join()
    assert counts == [len(postgres.migrations())] * 4


def test_init_with_a_url_creates_the_schema_and_records_it(
    pg_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = git_init(tmp_path / "repo")
    monkeypatch.chdir(repo)
    monkeypatch.delenv("AICTL_DB", raising=False)
    assert run(["init", "--db", pg_database, "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert f"{STATE_DIR}/{CONFIG}" in created["created"]
    assert f"{STATE_DIR}/state.db" not in created["created"]
    assert not (repo / STATE_DIR / "state.db").exists()
    assert (repo / STATE_DIR / CONFIG).read_text() == f"database: {pg_database}\n"
    # every command in the repository now finds the PostgreSQL database
    assert locate(cwd=repo).url == pg_database
    assert run(["task", "create", "on postgres", "-q"]) == 0
    assert capsys.readouterr().out == "1\n"
    with psycopg.connect(pg_database) as direct:
        assert direct.execute("SELECT title FROM tasks").fetchall() == [("on postgres",)]
    # init again: nothing changes
    assert run(["init", "--db", pg_database]) == 0
    assert "nothing changed" in capsys.readouterr().out


def test_a_config_naming_no_url_is_refused_with_its_line(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    initialise(repo)
    (repo / STATE_DIR / CONFIG).write_text("# where the state lives\ndatabase: /tmp/x.db\n")
    with pytest.raises(InvalidInput, match=r"config:2: database: must be a postgresql:// URL"):
        locate(cwd=repo)


def test_init_refuses_a_db_that_is_not_a_url(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    with pytest.raises(InvalidInput, match="must be a postgresql:// URL"):
        initialise(repo, database="/tmp/state.db")
    assert not (repo / STATE_DIR).exists()


def test_the_dashboards_change_counter_moves_with_every_write(
    pg_database: str, tmp_path: Path
) -> None:
    """PostgreSQL has no ``PRAGMA data_version``: the dashboard's watcher reads the audit head."""
    workspace, _ = initialise(git_init(tmp_path / "repo"), database=pg_database)
    service = TaskService(workspace)
    watcher = connect(workspace.database)
    try:
        before = data_version(watcher)
        task = service.create("t")
        after_create = data_version(watcher)
        service.cancel(task.id)
        assert before < after_create < data_version(watcher)
    finally:
        watcher.close()
        service.close()


def test_daemons_are_woken_by_changes_that_make_work_ready_and_by_nothing_else(
    pg_database: str, tmp_path: Path
) -> None:
    """LISTEN/NOTIFY: the listener hears each committed change that can make work ready,
    in commit order; a claim, a heartbeat, a start and a refused change send nothing (else a
    daemon would wake itself at every tick)."""
    workspace, _ = initialise(git_init(tmp_path / "repo"), database=pg_database)
    heard: list[str] = []
    arrived = threading.Condition()

    def wake(reason: str) -> None:
        with arrived:
            heard.append(reason)
            arrived.notify_all()

    listener = WorkListener(pg_database, wake)
    listener.start()
    service = TaskService(workspace)
    try:
        assert listener.listening.wait(30)
        first = service.create("first")
        claim = service.claim("w", ttl="1m")
        service.heartbeat(claim.token)
        service.start(claim.token)
        with pytest.raises(IllegalTransition):
            service.retry(first.id)  # running: refused, rolled back
        service.complete(claim.token, result="ok")
        service.create("second")
        with arrived:
            assert arrived.wait_for(lambda: len(heard) >= 3, timeout=30), heard
        assert heard == ["created", "completed", "created"]
    finally:
        service.close()
        listener.close()


def test_a_daemon_on_postgres_listens_and_one_on_sqlite_polls(
    pg_database: str, tmp_path: Path
) -> None:
    workspace, _ = initialise(git_init(tmp_path / "repo"), database=pg_database)
    daemon = Daemon(workspace)
    listener = daemon._listener()
    assert listener is not None
    service = TaskService(workspace)
    try:
        assert listener.listening.wait(30)
        service.create("wake up")
        assert daemon._wake.wait(30)  # the loop's wait ends before its tick would
    finally:
        service.close()
        listener.close()
    sqlite_workspace, _ = initialise(git_init(tmp_path / "other"))
    assert Daemon(sqlite_workspace)._listener() is None


def test_backup_and_restore_are_refused_on_postgres(pg_database: str, tmp_path: Path) -> None:
    workspace, _ = initialise(git_init(tmp_path / "repo"), database=pg_database)
    with pytest.raises(InvalidInput, match="keeps its state in PostgreSQL"):
        maintenance.backup(workspace, tmp_path / "copy.db")
    with pytest.raises(InvalidInput, match="aictl restore copies the SQLite state file"):
        maintenance.restore(workspace, tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists()
    assert not (workspace.db_path).exists()  # no SQLite file made on the side


def test_daemons_of_two_clones_may_serve_one_database_and_two_in_one_clone_may_not(
    pg_database: str, tmp_path: Path
) -> None:
    """One daemon per clone (the lock beside .ai/), any number per PostgreSQL database: that
    is how several hosts share one queue. (On SQLite the database file's identity is locked
    too: see tests/unit/test_daemon_instance_lock.py.)"""
    first, _ = initialise(git_init(tmp_path / "host-a"), database=pg_database)
    second, _ = initialise(git_init(tmp_path / "host-b"), database=pg_database)
    locks = [InstanceLock(DaemonPaths.of(first)), InstanceLock(DaemonPaths.of(second))]
    for lock in locks:
        lock.acquire()
    try:
        with pytest.raises(DaemonRunning):
            InstanceLock(DaemonPaths.of(first)).acquire()
    finally:
        for lock in locks:
            lock.release()


def test_three_daemons_in_three_clones_share_one_queue_each_task_once(
    pg_database: str, tmp_path: Path
) -> None:
    """Three clones of a repository, each with its daemon (in threads here, with the fake
    connector), on one PostgreSQL database: 30 tasks with dependencies and overlapping globs
    are each run exactly once, after their dependencies, never two intersecting globs at
    once, by more than one daemon; and the audit chain verifies."""
    from itertools import combinations

    from aictl.daemon.status import log_lines
    from aictl.domain.globs import globs_intersect
    from tests.daemon_fakes import register_ai, reset_recorder, running_daemon, wait_for

    clones = [
        initialise(git_init(tmp_path / f"host-{name}"), database=pg_database)[0] for name in "abc"
    ]
    recorder = reset_recorder()
    register_ai(clones[0], "fake-1", max_concurrency=6)
    pool = ("src/a/**", "src/*/x.py", "docs/*.md", "docs/guide.md", "tests/**")
    service = TaskService(clones[1])
    try:
        ids: list[int] = []
        for index in range(30):
            depends = ids[-1:] if index % 4 == 3 else []
            paths = [pool[index % len(pool)]] if index % 3 else []
            ids.append(service.create(f"t{index}", paths=paths, depends_on=depends).id)
        tasks = {task.id: task for task in service.list_tasks()}
        with (
            running_daemon(clones[0], concurrency=2),
            running_daemon(clones[1], concurrency=2),
            running_daemon(clones[2], concurrency=2),
        ):
            wait_for(
                lambda: {str(t.status) for t in service.list_tasks()} == {"done"},
                "every task done",
            )
        assert sorted(recorder.runs) == sorted(ids)  # each exactly once
        for task_id, task in tasks.items():
            for dependency in task.depends_on:
                assert recorder.runs.index(dependency) < recorder.runs.index(task_id)
        for together in recorder.overlaps:
            for a, b in combinations(together, 2):
                assert not any(
                    globs_intersect(x, y) for x in tasks[a].paths for y in tasks[b].paths
                ), (a, b)
        finished = [
            [r for r in log_lines(DaemonPaths.of(clone).log) if r.get("event") == "task.finished"]
            for clone in clones
        ]
        assert sum(len(records) for records in finished) == len(ids)  # one daemon each
        assert sum(1 for records in finished if records) >= 2  # the queue was shared
        assert service.store.audit.verify().ok
    finally:
        service.close()


def test_a_frozen_writer_does_not_hold_every_hosts_writes(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client stopped inside a write transaction (SIGSTOP, a paused VM) holds the writer
    lock as far as the server knows: the server ends its session after
    ``IDLE_IN_TRANSACTION_S`` (here 1 s), so the other hosts' writes go on, and the frozen
    client's own next statement fails instead of committing late."""
    import sqlite3
    import time

    monkeypatch.setattr(postgres, "IDLE_IN_TRANSACTION_S", 1)
    frozen, other = connect(pg_database), connect(pg_database)
    try:
        with pytest.raises(sqlite3.Error), frozen.transaction() as connection:
            time.sleep(2.5)  # frozen with the writer lock held
            connection.execute("SELECT 1")
        with psycopg.connect(pg_database, autocommit=True) as waiter:
            waiter.execute("SET lock_timeout = '5s'")  # without the fix: waits, then fails
            with waiter.transaction():
                waiter.execute(f"SELECT pg_advisory_xact_lock({postgres.WRITER_LOCK})")
        with other.transaction() as connection:  # and aictl's own writers go on
            connection.execute("SELECT 1")
        # thawed, the client opens a new session for its next transaction and its next read
        # (a daemon's next tick works again instead of failing on "the connection is closed")
        with frozen.transaction() as connection:
            connection.execute("CREATE TABLE probe (title TEXT)")
        assert frozen.connection.execute("SELECT count(*) FROM probe").fetchone()[0] == 0
    finally:
        other.close()
        frozen.close()


def test_a_session_ended_between_transactions_is_opened_again_one_inside_fails(
    pg_database: str,
) -> None:
    """The server ends aictl's session (a restart, an administrator's pg_terminate_backend):
    the next statement between transactions (a hot-path function too) runs on a new session;
    a transaction under way fails as a whole and never goes on on a new session."""
    import sqlite3

    database = connect(pg_database)
    try:

        def end_its_session() -> None:
            pid = database.connection.execute("SELECT pg_backend_pid()").fetchone()[0]
            with psycopg.connect(pg_database, autocommit=True) as admin:
                # the timeout makes it wait until the session is gone, its goodbye sent
                admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))

        end_its_session()
        assert database.connection.execute("SELECT 7").fetchone()[0] == 7
        end_its_session()
        with database.transaction() as connection:
            connection.execute("CREATE TABLE probe (title TEXT)")
            connection.execute("INSERT INTO probe (title) VALUES ('one')")
        with pytest.raises(sqlite3.OperationalError), database.transaction() as connection:
            connection.execute("INSERT INTO probe (title) VALUES ('two')")
            end_its_session()
            connection.execute("INSERT INTO probe (title) VALUES ('three')")
        titles = database.connection.execute("SELECT title FROM probe").fetchall()
        assert [row[0] for row in titles] == ["one"]
        # the hot path's functions are sent once, never repeated: an ended session is found
        # before sending (its socket holds the server's goodbye) and opened again
        store = TaskStore(database, SystemClock())
        store.create(NewTask(title="t"))
        end_its_session()
        claim = store.claim("w", timedelta(minutes=5))
        end_its_session()
        assert store.start(claim.token).status == "running"
    finally:
        database.close()


def test_an_ended_session_is_found_on_a_descriptor_past_1024(pg_database: str) -> None:
    """A busy process's connection can sit on a descriptor ``select`` refuses (1024 and
    up): the hot path's check for an ended session works there too."""
    import os

    spare = []
    database = None
    try:
        while not spare or spare[-1] < 1100:  # the next descriptors opened are past 1024
            spare.append(os.open(os.devnull, os.O_RDONLY))
        database = connect(pg_database)
        store = TaskStore(database, SystemClock())
        store.create(NewTask(title="t"))
        assert database.connection.live().fileno() > 1024
        pid = database.connection.execute("SELECT pg_backend_pid()").fetchone()[0]
        with psycopg.connect(pg_database, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
        assert store.claim("w", timedelta(minutes=5)).task.title == "t"
    finally:
        if database is not None:
            database.close()
        for fd in spare:
            os.close(fd)


# --------------------------------------------------------------- concurrent transactions


def _waiting_for_a_lock(url: str) -> bool:
    """Whether some session of the database waits for a lock (advisory or a row's)."""
    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE NOT l.granted AND a.datname = current_database()"
        ).fetchone()
    return bool(row and row[0])


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def test_lease_holders_write_side_by_side_and_an_exclusive_writer_waits_for_them(
    pg_database: str,
) -> None:
    """Two concurrent transactions (the lease holders' hot path) are open at once; an
    exclusive one (any other change) waits until both have ended, and commits after them."""
    first, second, third = (connect(pg_database) for _ in range(3))
    finished: list[str] = []
    try:
        with first.transaction(concurrent=True), second.transaction(concurrent=True):
            # both hold the writer lock (shared) at this point: neither waited for the other

            def exclusive() -> None:
                with third.transaction() as connection:
                    connection.execute("SELECT 1")
                finished.append("exclusive")

            writer = threading.Thread(target=exclusive)
            writer.start()
            _wait_until(lambda: _waiting_for_a_lock(pg_database), "the exclusive writer waits")
            assert finished == []
            finished.append("concurrent")
        writer.join(timeout=20)
        assert finished == ["concurrent", "exclusive"]
    finally:
        for database in (first, second, third):
            database.close()


@pytest.mark.parametrize(
    ("actor", "task_id", "data"),
    [("ai:bot", 7, '{"a":1}'), ('q"uote\\', None, "{}"), ("ü\u2028\x01\t", 0, '{"é":"\\n"}')],
)
def test_the_server_hashes_an_audit_row_as_row_hash_does(
    pg_database: str, actor: str, task_id: int | None, data: str
) -> None:
    """``aictl_audit_append`` (every audit row of a concurrent transaction and of the hot
    path) builds the canonical header in SQL: with text that JSON escapes, its hash must be
    exactly ``row_hash``'s, or those rows would not verify."""
    from aictl.store.audit import GENESIS, row_hash

    database = connect(pg_database)
    try:
        at = "2026-12-05T10:00:00.000000Z"
        with database.transaction():
            database.connection.execute(
                "SELECT aictl_audit_append(?, ?, ?, ?, ?)",
                (at, "task.claimed", actor, task_id, data),
            )
        row = database.connection.execute("SELECT seq, prev_hash, hash FROM audit_log").fetchone()
        assert (row[0], row[1]) == (1, GENESIS)
        assert row[2] == row_hash(1, at, "task.claimed", actor, task_id, data, GENESIS)
    finally:
        database.close()


def test_a_concurrent_transactions_audit_rows_are_appended_at_its_commit(
    pg_database: str,
) -> None:
    """Its rows reach the table only with its COMMIT, each hashed by the server exactly as
    ``row_hash`` would (the chain verifies, with text that JSON escapes); a rolled-back
    savepoint's rows and notifications are dropped with it."""
    database = connect(pg_database)
    log = AuditLog(database.connection)
    odd = {"quote": 'a "b" \\ c', "tab": "x\ty", "accent": "é 中", "nul": "\x00"}
    try:
        log.append("2026-01-01T00:00:00Z", "probe.before", "user", None, {})
        with database.transaction(concurrent=True):
            log.append("2026-01-01T00:00:01Z", "probe.kept", 'an "actor"', 7, odd)
            assert log.head_seq() == 1  # not yet in the table
            with pytest.raises(RuntimeError), database.transaction():
                log.append("2026-01-01T00:00:02Z", "probe.dropped", "user", None, {})
                database.announce("dropped")
                raise RuntimeError("the savepoint rolls back")
            log.append("2026-01-01T00:00:03Z", "probe.last", "user", None, {"n": 1})
            database.announce("kept")
            sent: list[tuple[str, object]] = []
            raw = database.pg.raw
            real_execute = raw.execute

            def execute(query: str, params: object = None, **kwargs: object) -> object:
                sent.append((query, params))
                return real_execute(query, params, **kwargs)  # type: ignore[arg-type]

            raw.execute = execute  # the commit, when the block ends
        raw.execute = real_execute
        # one message, no parameters: the server runs it through without the client
        assert len(sent) == 1 and sent[0][1] is None
        assert sent[0][0].count("aictl_audit_append") == 2 and "pg_notify" in sent[0][0]
        assert sent[0][0].endswith("COMMIT") and "dropped" not in sent[0][0]
        entries = log.entries()
        assert [entry.kind for entry in entries] == ["probe.before", "probe.kept", "probe.last"]
        assert entries[1].data == odd and entries[1].actor == 'an "actor"'
        assert log.verify().ok
    finally:
        database.close()


def test_a_deadlock_between_writers_is_broken_and_the_complete_runs_again(
    pg_database: str,
) -> None:
    """Another session holds the dependent's row and then waits for the task's: PostgreSQL
    ends aictl's transaction to break the cycle, and ``complete`` runs again and succeeds,
    once (one ``task.completed`` row, the dependent ready, the chain intact)."""
    store = TaskStore(connect(pg_database), SystemClock())
    try:
        task = store.create(NewTask(title="dependency"))
        dependent = store.create(NewTask(title="dependent", depends_on=[task.id]))
        claim = store.claim("worker", timedelta(minutes=5), task_id=task.id)
        store.start(claim.token)
        outcome: list[object] = []
        with psycopg.connect(pg_database) as other:  # a transaction, not autocommit
            other.execute("SET LOCAL deadlock_timeout = '30s'")  # aictl's side detects it
            other.execute("UPDATE tasks SET updated_at = updated_at WHERE id = %s", (dependent.id,))

            def complete() -> None:
                try:
                    outcome.append(store.complete(claim.token))
                except Exception as error:  # the assertion below shows it
                    outcome.append(error)

            worker = threading.Thread(target=complete)
            worker.start()
            _wait_until(lambda: _waiting_for_a_lock(pg_database), "complete waits for the row")
            # closes the cycle; aictl's session, waiting longer, is the one ended
            other.execute("UPDATE tasks SET updated_at = updated_at WHERE id = %s", (task.id,))
            other.commit()
        worker.join(timeout=30)
        assert len(outcome) == 1 and not isinstance(outcome[0], Exception), outcome
        assert store.get(task.id).status == "done"
        # the dependent counts its dependency done exactly once: it can be claimed
        assert store.claim("worker", timedelta(minutes=5)).task.id == dependent.id
        completed = [e for e in store.audit.entries(task_id=task.id) if e.kind == "task.completed"]
        assert len(completed) == 1
        assert store.audit.verify().ok
    finally:
        store.db.close()


def _ruling(effect: str, reason: str | None = None) -> Ruling:
    """A claim's ruling as a policy would give it, with ``effect``."""
    fields = {"action": "claim", "subject": "worker", "rules": [], "layers": {},
              "policy_hash": "test", "request": {}}  # fmt: skip
    return Ruling(effect, reason or f"test: {effect}", fields)


def test_a_claim_reading_pages_puts_each_ready_task_to_the_policy_once(
    pg_database: str,
) -> None:
    """A claim reads the ready tasks page by page inside its transaction, and a complete runs
    beside it: one that commits between two pages makes a task of higher priority ready, which
    pushed the first page's last row into the second while pages were read by offset. The
    claim still asks the policy about each ready task once (it asked twice about that row
    before ids were kept); the task made ready waits for the next claim."""
    store = TaskStore(connect(pg_database), SystemClock())
    other = TaskStore(connect(pg_database), SystemClock())
    try:
        blocker = store.create(NewTask(title="blocker"))
        store.create(NewTask(title="urgent", priority=9, depends_on=[blocker.id]))
        plain = [store.create(NewTask(title=f"plain {n}")).id for n in range(FIRST_READY_PAGE + 4)]
        lease = other.claim("other", timedelta(minutes=5), task_id=blocker.id).token
        other.start(lease)
        asked: list[int] = []

        def deny(task: object) -> Ruling:
            asked.append(task.id)  # type: ignore[attr-defined]
            if len(asked) == FIRST_READY_PAGE:  # the first page's last row: "urgent" gets ready
                other.complete(lease)
            return _ruling("deny", "test: every task denied")

        with pytest.raises(Exception, match="denied"):
            store.claim("worker", timedelta(minutes=5), decide=deny)
        assert asked == plain, "a ready task was put to the policy twice, or one was missed"
        assert str(store.get(blocker.id).status) == "done"
    finally:
        store.db.close()
        other.db.close()


# ------------------------------------------------ the hot path as server-side functions


def test_the_functions_take_the_locks_the_python_side_names() -> None:
    """migrations/pg/0012 repeats the advisory locks' numbers (SQL cannot import them)."""
    script = dict(postgres.migrations())[12]
    for number in (postgres.WRITER_LOCK, postgres.AUDIT_LOCK, postgres.SERIAL_LOCKS["claims"]):
        assert f"({number})" in script
    assert script.count("pg_advisory_xact_lock_shared(1634296692)") == 3  # claim, start, complete


def test_a_start_in_the_server_waits_for_an_exclusive_writer_and_then_runs(
    pg_database: str,
) -> None:
    """``aictl_start`` takes the writer lock shared, as the Python path does: while another
    session's exclusive transaction is open it waits, and it runs once that commits."""
    store = TaskStore(connect(pg_database), SystemClock())
    exclusive = connect(pg_database)
    try:
        store.create(NewTask(title="t"))
        claim = store.claim("w", timedelta(minutes=5))
        started: list[object] = []
        with exclusive.transaction():
            worker = threading.Thread(target=lambda: started.append(store.start(claim.token)))
            worker.start()
            _wait_until(lambda: _waiting_for_a_lock(pg_database), "the start waits")
            assert started == []
        worker.join(timeout=20)
        assert [task.status for task in started] == ["running"]  # type: ignore[attr-defined]
    finally:
        store.db.close()
        exclusive.close()


def test_the_quick_overlap_in_sql_agrees_with_the_glob_automata(pg_database: str) -> None:
    """Where ``aictl_quick_overlap`` answers (NULL: the automata must), it answers as
    ``globs_intersect``."""
    from aictl.domain.globs import globs_intersect

    samples = [
        "**", "src/**", "src/x/*.py", "src/*/a.py", "src/a.py", "src/b.py", "docs/*.md",
        "pkg1/**", "pkg10/**", "src/[ab].py", "src/?.py", "a*", "ab/**", "src", "src/x/y.py",
    ]  # fmt: skip
    database = connect(pg_database)
    try:
        answered = 0
        for a in samples:
            for b in samples:
                quick = database.connection.execute(
                    "SELECT aictl_quick_overlap(?, ?)", (a, b)
                ).fetchone()[0]
                if quick is not None:
                    answered += 1
                    assert quick == globs_intersect(a, b), (a, b)
        assert 0 < answered < len(samples) ** 2  # some pairs are left to the automata
    finally:
        database.close()


def test_a_server_claim_asks_python_about_a_new_pair_of_globs_once(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A candidate whose glob meets a held one that SQL cannot settle is handed back; the
    glob automata decide the pair, ``glob_pairs`` remembers it, and a later claim (another
    process's) reads the answer instead of asking again."""
    from aictl.domain import globs

    store = TaskStore(connect(pg_database), SystemClock())
    other = TaskStore(connect(pg_database), SystemClock())
    try:
        store.create(NewTask(title="holder", paths=["src/*/a.py"], priority=9))
        conflicting = store.create(NewTask(title="conflicting", paths=["src/x/*.py"], priority=5))
        free = store.create(NewTask(title="free", paths=["docs/*.md"], priority=1))
        assert store.claim("w1", timedelta(minutes=5)).task.title == "holder"
        assert store.claim("w2", timedelta(minutes=5)).task.id == free.id
        pairs = store.db.connection.execute("SELECT * FROM glob_pairs").fetchall()
        assert [tuple(row) for row in pairs] == [(1, "src/*/a.py", "src/x/*.py", True)]

        def asked(a: str, b: str) -> bool:
            raise AssertionError(f"asked again about {a} and {b}")

        monkeypatch.setattr(globs, "globs_intersect", asked)
        with pytest.raises(NothingReady, match=r"1 ready task\(s\) are blocked by path locks"):
            other.claim("w3", timedelta(minutes=5))
        assert other.get(conflicting.id).status == "queued"
    finally:
        store.db.close()
        other.db.close()


def test_a_server_claim_trusts_only_the_answers_of_its_own_glob_semantics(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer remembered by an aictl whose glob semantics were older (a lower
    ``OVERLAP_VERSION``, here a wrong one) is not read: the pair is decided again, under the
    new version, and the old answers go."""
    from aictl.domain import globs

    store = TaskStore(connect(pg_database), SystemClock())
    try:
        store.create(NewTask(title="holder", paths=["src/*/a.py"], priority=9))
        conflicting = store.create(NewTask(title="conflicting", paths=["src/x/*.py"], priority=5))
        store.db.connection.execute(
            "INSERT INTO glob_pairs VALUES (1, 'src/*/a.py', 'src/x/*.py', false)"
        )
        assert store.claim("w1", timedelta(minutes=5)).task.title == "holder"
        monkeypatch.setattr(globs, "OVERLAP_VERSION", 2)
        with pytest.raises(NothingReady, match=r"1 ready task\(s\) are blocked by path locks"):
            store.claim("w2", timedelta(minutes=5))
        assert store.get(conflicting.id).status == "queued"
        pairs = store.db.connection.execute("SELECT * FROM glob_pairs").fetchall()
        assert [tuple(row) for row in pairs] == [(2, "src/*/a.py", "src/x/*.py", True)]
    finally:
        store.db.close()


def test_a_server_claim_is_never_stamped_before_a_change_committed_ahead_of_it(
    pg_database: str,
) -> None:
    """The caller reads its clock before the server finds the task ready (and before it
    waits for the claims' lock): a dependency whose complete committed in between (stamped
    later, by another process) must not finish after the claim starts, nor a lock's release
    come after the next claim of an overlapping glob. The function stamps the claim no
    earlier than the chain's latest row."""
    clock = ManualClock()
    store = TaskStore(connect(pg_database), clock)
    try:
        dependency = store.create(NewTask(title="dependency"))
        dependent = store.create(NewTask(title="dependent", depends_on=[dependency.id]))
        claim = store.claim("w", timedelta(minutes=5))
        store.start(claim.token)
        clock.advance(60)
        finished = store.complete(claim.token).finished_at
        clock.advance(-30)  # another host's clock, or a read before that complete committed
        taken = store.claim("w", timedelta(minutes=5)).task
        assert taken.id == dependent.id
        assert taken.claimed_at == finished
        assert taken.lease_expires_at == taken.claimed_at + timedelta(minutes=5)  # a full TTL
        assert store.audit.verify().ok
    finally:
        store.db.close()


def _scenario(store: TaskStore, clock: ManualClock) -> None:
    """Claims, starts and completes over globs that overlap (the automata decide some pairs),
    dependencies, priorities, labels and text outside ASCII; a start on a lost lease."""
    ttl = timedelta(minutes=5)
    store.create(NewTask(title="base ✓", paths=["src/*/a.py", "docs/**"], priority=5,
                         labels={"team": "ünï"}))  # fmt: skip
    store.create(NewTask(title="overlaps base", paths=["src/x/*.py"], priority=4))
    store.create(NewTask(title="free", priority=3))
    store.create(NewTask(title="after base", paths=["src/y/**"], depends_on=[1], priority=9))
    first = store.claim("w1", ttl)
    clock.advance(1)
    second = store.claim("w2", timedelta(seconds=90.5))  # task 2 is held back by task 1's lock
    store.start(first.token)
    clock.advance(2)
    store.start(second.token)
    clock.advance(3)
    store.complete(first.token, "done: ✓", {"tests": {"passed": 3}, "files": ["src/q/a.py"]})
    third = store.claim("w1", ttl)  # task 4, its dependency done, ahead of task 2
    clock.advance(1)
    fourth = store.claim("w3", ttl)
    store.complete(second.token)
    clock.advance(400)  # past the leases of the third and fourth claims
    with pytest.raises(Exception, match="lease"):
        store.start(third.token)
    store.sweep()
    store.start(store.claim("w2", ttl).token)
    assert fourth.task.id != third.task.id


def test_the_server_functions_write_what_the_python_path_writes(pg_server: str) -> None:
    """One scenario through the server's functions and through the Python path, each on a
    database of its own with the same clock: every task row (its lease's secret aside), path
    lock and audit row is the same, hashes included."""
    from tests import pgserver

    written = []
    for in_server in (True, False):
        with pgserver.new_database(pg_server) as url:
            clock = ManualClock()
            store = TaskStore(connect(url), clock)
            store.db.hot_path_in_server = in_server
            try:
                _scenario(store, clock)
                read = store.db.connection.execute
                written.append((
                    [dict(row) for row in read("SELECT * FROM tasks ORDER BY id")],
                    [tuple(row) for row in read("SELECT * FROM path_locks ORDER BY task_id, glob")],
                    [tuple(row) for row in read("SELECT * FROM audit_log ORDER BY seq")],
                ))  # fmt: skip
            finally:
                store.db.close()
    (tasks, locks, audit), (python_tasks, python_locks, python_audit) = written
    for row in tasks + python_tasks:  # random secrets: whether each row has one
        row["lease_secret_hash"] = row["lease_secret_hash"] is not None
    assert tasks == python_tasks
    assert locks == python_locks and locks != []
    assert audit == python_audit
    assert {row[2] for row in audit} >= {"task.claimed", "task.started", "task.completed"}


def test_a_claim_of_a_task_without_paths_does_not_wait_for_the_claims_lock(
    pg_database: str,
) -> None:
    """A head of the queue with no paths takes no path lock, so no other claim's choice
    depends on it: its claim runs while another session holds the claims' lock. A claim
    whose head has paths waits for that lock, and takes the task once it is let go."""
    store = TaskStore(connect(pg_database), SystemClock())
    try:
        free = store.create(NewTask(title="free", priority=9))
        locked = store.create(NewTask(title="with paths", paths=["src/**"], priority=5))
        taken: list[int] = []
        with psycopg.connect(pg_database, autocommit=True) as other:
            with other.transaction():
                other.execute(
                    "SELECT pg_advisory_xact_lock(%s)", (postgres.SERIAL_LOCKS["claims"],)
                )

                def claim(holder: str) -> threading.Thread:
                    worker = threading.Thread(
                        target=lambda: taken.append(
                            store.claim(holder, timedelta(minutes=5)).task.id
                        )
                    )
                    worker.start()
                    return worker

                claim("w1").join(timeout=20)
                assert taken == [free.id]  # not waiting for the lock
                worker = claim("w2")
                _wait_until(lambda: _waiting_for_a_lock(pg_database), "the claim waits")
                assert taken == [free.id]
            worker.join(timeout=20)
        assert taken == [free.id, locked.id]
        assert store.audit.verify().ok
    finally:
        store.db.close()


@pytest.mark.parametrize("in_server", [True, False], ids=["server", "python"])
def test_a_walking_claim_goes_past_a_task_another_claim_took_meanwhile(
    pg_database: str, in_server: bool
) -> None:
    """A claim walking the queue under the claims' lock reads a task with no paths as ready
    while another session's claim of it (which needs no claims' lock) has not committed: it
    skips that row, held by the other claim, and takes the next task (committing after the
    other, whose audit row holds the chain's lock)."""
    store = TaskStore(connect(pg_database), SystemClock())
    store.db.hot_path_in_server = in_server
    try:
        head = store.create(NewTask(title="no paths", priority=9))
        second = store.create(NewTask(title="with paths", paths=["src/**"], priority=5))
        now = datetime.now(UTC)
        taken: list[int] = []
        with psycopg.connect(pg_database, autocommit=True) as other:
            with other.transaction():
                outcome = other.execute(
                    "SELECT outcome, (task).id FROM aictl_claim('x', 'h', 300, '300', %s, %s, 1)",
                    (format_time(now + timedelta(minutes=5)), format_time(now)),
                ).fetchone()
                assert outcome == ("taken", head.id)
                worker = threading.Thread(
                    target=lambda: taken.append(store.claim("w", timedelta(minutes=5)).task.id)
                )
                worker.start()
                _wait_until(lambda: _waiting_for_a_lock(pg_database), "the walk waits for it")
                assert taken == []
            worker.join(timeout=20)
        assert taken == [second.id]
        assert store.get(head.id).lease_holder == "x"
        assert store.audit.verify().ok
    finally:
        store.db.close()


def test_a_claim_deciding_on_a_task_holds_it_so_no_server_claim_takes_it_meanwhile(
    pg_database: str,
) -> None:
    """While the policy decides on a candidate (the Python path, with a decision record),
    its row is held: a server claim beside it, which needs no claims' lock for a task with no
    paths, takes the next task instead, and the allow recorded is the claim that happened."""
    store = TaskStore(connect(pg_database), SystemClock())
    other = TaskStore(connect(pg_database), SystemClock())
    try:
        first = store.create(NewTask(title="first", priority=9))
        second = store.create(NewTask(title="second"))
        taken_beside: list[int] = []

        def allow(task: object) -> Ruling:
            taken_beside.append(other.claim("beside", timedelta(minutes=5)).task.id)
            return _ruling("allow")

        claim = store.claim("worker", timedelta(minutes=5), decide=allow)
        assert (claim.task.id, taken_beside) == (first.id, [second.id])
        rows = store.db.connection.execute(
            "SELECT task_id, effect, lease_epoch FROM decisions WHERE action = 'claim'"
        ).fetchall()
        assert [tuple(row) for row in rows] == [(first.id, "allow", claim.task.lease_epoch)]
        assert store.audit.verify().ok
    finally:
        store.db.close()
        other.db.close()


def test_a_walk_goes_on_from_the_last_row_read_when_tasks_are_taken_beside_it(
    pg_database: str,
) -> None:
    """Server claims take tasks of the first page while a claim is still deciding on it: the
    next page starts after the last row read, so the walk misses no ready task (read by
    offset, it jumped over as many as were taken)."""
    store = TaskStore(connect(pg_database), SystemClock())
    other = TaskStore(connect(pg_database), SystemClock())
    try:
        denied = [store.create(NewTask(title=f"denied {n}", priority=9)).id
                  for n in range(FIRST_READY_PAGE)]  # fmt: skip
        allowed = [store.create(NewTask(title=f"allowed {n}")).id for n in range(12)]
        asked: list[int] = []

        def decide(task: object) -> Ruling:
            asked.append(task.id)  # type: ignore[attr-defined]
            if len(asked) == 1:  # the rest of the first page goes to claims beside this one
                for _ in range(FIRST_READY_PAGE - 1):
                    other.claim("beside", timedelta(minutes=5))
            return _ruling("deny" if task.id in denied else "allow")  # type: ignore[attr-defined]

        claim = store.claim("worker", timedelta(minutes=5), decide=decide)
        assert claim.task.id == allowed[0]
        assert asked == [denied[0], allowed[0]]
        taken = {t.id for t in store.list_tasks() if t.lease_holder == "beside"}
        assert taken == set(denied[1:])
    finally:
        store.db.close()
        other.db.close()
