"""The SQLite connection: durability settings, immediate transactions, migrations."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from aictl.store.db import Database, migrations, schema_of, split_statements

SCHEMA = Path(__file__).resolve().parents[2] / "aictl" / "store" / "schema.sql"


def test_settings(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.db")
    pragma = db.connection.execute
    assert pragma("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert pragma("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert pragma("PRAGMA foreign_keys").fetchone()[0] == 1
    assert pragma("PRAGMA busy_timeout").fetchone()[0] >= 10_000
    assert db.connection.isolation_level is None  # no implicit deferred transactions
    db.close()


def test_synchronous_can_be_relaxed_by_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AICTL_SYNCHRONOUS", "normal")
    db = Database(tmp_path / "s.db")
    assert db.connection.execute("PRAGMA synchronous").fetchone()[0] == 1
    db.close()
    with pytest.raises(ValueError, match="synchronous must be one of"):
        Database(tmp_path / "t.db", synchronous="sometimes")


def test_transaction_takes_the_write_lock_at_begin(tmp_path: Path) -> None:
    """A deferred transaction would let a second writer in until the first write; an immediate
    one holds the lock from BEGIN, so the other writer is refused at once (timeout 0)."""
    db = Database(tmp_path / "s.db")
    other = sqlite3.connect(tmp_path / "s.db", timeout=0, isolation_level=None)
    with db.transaction(), pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()
    db.close()


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.db")
    now = "2026-01-01T00:00:00.000000Z"
    insert = "INSERT INTO tasks (title, created_at, updated_at) VALUES (?, ?, ?)"
    with pytest.raises(RuntimeError), db.transaction() as connection:
        connection.execute(insert, ("gone", now, now))
        raise RuntimeError
    with db.transaction() as connection:
        connection.execute(insert, ("kept", now, now))
        with pytest.raises(RuntimeError), db.transaction() as inner:  # a savepoint
            inner.execute(insert, ("inner gone", now, now))
            raise RuntimeError
    titles = [row[0] for row in db.connection.execute("SELECT title FROM tasks")]
    assert titles == ["kept"]
    db.close()


def test_fresh_schema_equals_the_migrations_applied_in_order(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.db")
    assert db.schema_version() == migrations()[-1][0]
    assert schema_of(db.connection) == SCHEMA.read_text(encoding="utf-8"), (
        "aictl/store/schema.sql is stale: python -m aictl.store.db > aictl/store/schema.sql"
    )
    db.close()


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [version for version, _ in migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    Database(tmp_path / "s.db").close()
    db = Database(tmp_path / "s.db")
    assert db.schema_version() == migrations()[-1][0]
    db.close()


def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    """Six threads open one new database at once, thirty times over. Switching to WAL fails
    with "database is locked" without waiting when another opener holds the file (it did in
    CI about once in seventeen rounds), so one round alone would rarely catch a regression."""
    errors: list[BaseException] = []

    def open_close(path: Path) -> None:
        try:
            Database(path).close()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    for round_ in range(30):
        path = tmp_path / f"race{round_}.db"
        threads = [threading.Thread(target=open_close, args=(path,)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], f"round {round_}"
        db = Database(path)
        assert db.schema_version() == migrations()[-1][0]
        assert db.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()


def test_split_statements_keeps_semicolons_inside_strings() -> None:
    script = "-- comment\nCREATE TABLE a (x TEXT DEFAULT ';');\nINSERT INTO a VALUES ('1;2');\n"
    assert split_statements(script) == [
        "-- comment\nCREATE TABLE a (x TEXT DEFAULT ';');",
        "INSERT INTO a VALUES ('1;2');",
    ]


def _self_rolling_back(db: Database) -> None:
    """A table whose insert makes SQLite end the transaction by itself, as it does on a full
    disk or an I/O error: RAISE(ROLLBACK) in a trigger undoes the whole transaction."""
    db.connection.execute("CREATE TEMP TABLE doomed (x)")
    db.connection.execute(
        "CREATE TEMP TRIGGER doom BEFORE INSERT ON doomed"
        " BEGIN SELECT RAISE(ROLLBACK, 'disk gone'); END"
    )


def test_the_original_error_survives_a_rollback_sqlite_already_did(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.db")
    _self_rolling_back(db)
    with pytest.raises(sqlite3.IntegrityError, match="disk gone"), db.transaction() as connection:
        connection.execute("INSERT INTO doomed VALUES (1)")
    assert not db.connection.in_transaction
    with (
        pytest.raises(sqlite3.IntegrityError, match="disk gone"),
        db.transaction(),
        db.transaction() as inner,  # a savepoint: it goes with the transaction
    ):
        inner.execute("INSERT INTO doomed VALUES (1)")
    with db.transaction() as connection:  # and the connection is usable again
        connection.execute("CREATE TEMP TABLE fine (x)")
    db.close()


def test_a_failed_commit_is_rolled_back_and_reported(tmp_path: Path) -> None:
    """A deferred foreign key is checked at COMMIT: the commit fails, and must not leave the
    transaction open for the next BEGIN to trip over."""
    db = Database(tmp_path / "s.db")
    db.connection.execute(
        "CREATE TABLE child (parent INTEGER REFERENCES tasks (id) DEFERRABLE INITIALLY DEFERRED)"
    )
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"), db.transaction() as connection:
        connection.execute("INSERT INTO child VALUES (999)")
    assert not db.connection.in_transaction
    with db.transaction() as connection:
        connection.execute("INSERT INTO child VALUES (NULL)")
    assert db.connection.execute("SELECT count(*) FROM child").fetchone()[0] == 1
    db.close()
