"""The SQLite connection: settings, transactions and migrations. The only module that opens one.

Settings (see DESIGN.md): WAL so readers never wait for the writer; ``synchronous=FULL`` by
default so a finished task survives a power cut (``AICTL_SYNCHRONOUS=NORMAL`` trades that for
speed); foreign keys on; a busy timeout so that concurrent writers queue instead of failing.

Python's sqlite3 module opens *deferred* transactions by default: a transaction that reads and
then writes can then fail with SQLITE_BUSY half-way (the read lock cannot be upgraded while
another writer waits), which the busy timeout does not cover. We open the connection in
autocommit mode and begin every write with ``BEGIN IMMEDIATE``, which takes the write lock
up front and so waits in the busy handler instead.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from aictl.errors import DatabaseUnusable, NotAnAictlDatabase
from aictl.store.failures import explain, remember

BUSY_TIMEOUT_MS = 60_000
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
MIGRATIONS = Path(__file__).with_name("migrations")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class WriteConflict(sqlite3.OperationalError):
    """PostgreSQL ended a transaction to break a deadlock between concurrent ones: nothing of
    it was committed, and running it again is the remedy (``retried_on_conflict``)."""


CONFLICT_ATTEMPTS = 5
_P = ParamSpec("_P")
_R = TypeVar("_R")


def retried_on_conflict(
    method: Callable[Concatenate[Any, _P], _R],
) -> Callable[Concatenate[Any, _P], _R]:
    """Run a store method (one transaction of its own) again when it ends in ``WriteConflict``;
    not when it runs inside an outer transaction, whose earlier locks would meet the same
    conflict again (the outer one's caller sees the error)."""

    def run(store: Any, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        attempt = 1
        while True:
            outermost = store.db.depth == 0
            try:
                return method(store, *args, **kwargs)
            except WriteConflict:
                if not outermost or attempt == CONFLICT_ATTEMPTS:
                    raise
                attempt += 1

    functools.update_wrapper(run, method)
    return run


def is_postgres_url(target: object) -> bool:
    """Whether a ``--db`` / ``AICTL_DB`` / ``database:`` value names a PostgreSQL database."""
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def migrations() -> list[tuple[int, str]]:
    """Every numbered migration, in order, as (version, SQL script)."""
    # Plain paths, not importlib.resources: that import alone costs ~9 ms per command.
    found = []
    for entry in MIGRATIONS.iterdir():
        if entry.suffix == ".sql" and entry.name[:4].isdigit():
            found.append((int(entry.name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def latest_version() -> int:
    """The highest migration number, from file names only (cheap: checked at every open)."""
    names = [name for name in os.listdir(MIGRATIONS) if name.endswith(".sql")]
    return max((int(name[:4]) for name in names if name[:4].isdigit()), default=0)


def split_statements(script: str) -> list[str]:
    """Split a script into statements without ``executescript`` (which commits first)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not buffer.strip().startswith("--"):
        statements.append(buffer.strip())
    return statements


class Database:
    """One connection to a state database, with transaction helpers.

    Not shared between threads or processes: each worker opens its own. ``handoff=True``
    lets a thread other than the creator use it (one at a time: the owner serialises), for a
    connection opened in one thread and closed in another.
    """

    def __init__(
        self, path: Path | str, *, synchronous: str | None = None, handoff: bool = False
    ) -> None:
        self.path = Path(path)
        mode = (synchronous or os.environ.get("AICTL_SYNCHRONOUS") or "FULL").upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
        self._depth = 0
        self.url: str | None = None  # a PostgreSQL database's URL (postgres.PgDatabase)
        remember(self.path)
        try:
            self.connection = sqlite3.connect(
                self.path,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_MS / 1000,
                check_same_thread=not handoff,
            )
        except sqlite3.Error as error:
            raise explain(error, self.path) or error from error
        try:
            self.connection.row_factory = sqlite3.Row
            execute = self.connection.execute
            self._enter_wal()
            execute(f"PRAGMA synchronous={mode}")
            execute("PRAGMA foreign_keys=ON")
            execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self.migrate()
        except BaseException as error:
            self.connection.close()
            translated = explain(error, self.path)
            if translated is None:
                raise
            raise translated from error

    def close(self) -> None:
        self.connection.close()

    row_locks = False
    """Whether statements can hold rows (``FOR NO KEY UPDATE``): PostgreSQL, where claims run
    side by side; SQLite has one writer at a time."""

    hot_path_in_server = False
    """Whether the lease holder's claim, start and complete run as server-side functions
    (PostgreSQL, ``call``); on SQLite the store's Python path runs them in this process."""

    def call(self, sql: str, parameters: Sequence[Any]) -> Any:
        """Run one statement that is a transaction of its own and return its one row: a
        server-side function of the hot path, which SQLite has none of."""
        raise NotImplementedError("SQLite runs the hot path in Python")

    @property
    def depth(self) -> int:
        """0 outside a transaction, 1 inside one, more inside savepoints."""
        return self._depth

    def _enter_wal(self) -> None:
        """Switch a new database to WAL; a no-op read once any connection has done so.

        Switching takes an exclusive lock and SQLite answers "database is locked" at once,
        without its busy handler, while another connection holds the file (seen when several
        processes open a new database together). So retry, within the busy timeout.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        pause = 0.001
        while True:
            try:
                if self.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                    return
                self.connection.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    @contextmanager
    def transaction(
        self, *, concurrent: bool = False, serial: str | None = None
    ) -> Iterator[sqlite3.Connection]:
        """A write transaction: ``BEGIN IMMEDIATE`` outside, a savepoint when nested.

        ``concurrent`` and ``serial`` say when a transaction may run beside others (see
        ``postgres.PgDatabase.transaction``); SQLite has one writer at a time, always.

        Commits when the block ends normally; rolls back everything it did on any exception
        (including KeyboardInterrupt, and a failed COMMIT), so a state change is whole or
        absent. The exception that ended the block is the one raised: see ``_roll_back``.
        """
        connection = self.connection
        if self._depth:
            name = f"sp{self._depth}"
            connection.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield connection
                connection.execute(f"RELEASE {name}")
            except BaseException:
                self._roll_back(f"ROLLBACK TO {name}", f"RELEASE {name}")
                raise
            finally:
                self._depth -= 1
            return
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise explain(error, self.path) or error from error
        self._depth = 1
        try:
            yield connection
            connection.execute("COMMIT")
        except BaseException as error:
            self._roll_back("ROLLBACK")
            translated = explain(error, self.path)
            if translated is None:
                raise
            raise translated from error
        finally:
            self._depth = 0

    def announce(self, reason: str) -> None:
        """Tell waiting daemons that work may have become ready, when this transaction commits.
        SQLite has no such channel (its daemons poll); see ``postgres.PgDatabase.announce``."""

    def _roll_back(self, *statements: str) -> None:
        """Undo the failed block, never hiding why it failed.

        On some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM, an interrupt, a trigger's
        ``RAISE(ROLLBACK)``) SQLite has already rolled the whole transaction back by itself,
        and an explicit ROLLBACK would fail with "no transaction is active"; so roll back only
        while a transaction is open, and swallow a failure of the rollback itself: the caller
        re-raises the original exception, which is the one that explains what happened.
        """
        for statement in statements:
            if not self.connection.in_transaction:
                return
            try:
                self.connection.execute(statement)
            except sqlite3.Error:
                return

    def _refuse_foreign(self) -> None:
        """A database at version 0 is new (no tables yet) or not aictl's: refuse the latter.

        The version is read again in the same statement as the tables (one snapshot): another
        process may have committed the first migration since it was read.
        """
        rows = self.connection.execute(
            "SELECT name, (SELECT user_version FROM pragma_user_version) FROM sqlite_master"
            " WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name LIMIT 6"
        ).fetchall()
        if rows and rows[0][1] == 0:
            names = ", ".join(row[0] for row in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise NotAnAictlDatabase(
                f"{self.path} is not an aictl database: it holds another program's tables "
                f"({names})",
                hint="--db / AICTL_DB must name an .ai/state.db; `aictl init` makes one",
            )

    def schema_version(self) -> int:
        return int(self.connection.execute("PRAGMA user_version").fetchone()[0])

    def quick_check(self) -> list[str]:
        """SQLite's ``PRAGMA quick_check``: the first problems found in the file's structure
        (pages, records, index shapes), ``[]`` when it is sound. It reads every page, which
        only ``aictl doctor`` asks for. A file too damaged to be read at all raises the
        translated error (``DatabaseDamaged``)."""
        try:
            found = [row[0] for row in self.connection.execute("PRAGMA quick_check(5)")]
        except sqlite3.Error as error:
            raise explain(error, self.path) or error from error
        return [] if found == ["ok"] else found

    def migrate(self) -> None:
        """Bring the schema up to date, one migration per transaction.

        The version is re-read after taking the write lock, so two processes opening a new
        database at once apply each migration exactly once.

        Raises ``DatabaseUnusable`` for a database from a newer aictl (its version above every
        migration known here) and ``NotAnAictlDatabase`` for another program's database
        (version 0 with tables of its own): migrating either would damage it.
        """
        version, latest = self.schema_version(), latest_version()
        if version > latest:
            raise DatabaseUnusable(
                f"the state database {self.path} has schema version {version}, newer than "
                f"this aictl knows (up to {latest}): a newer aictl wrote it",
                hint="upgrade aictl to use it; it was left unchanged",
            )
        if version == 0:
            self._refuse_foreign()
        if version >= latest:
            return
        for version, script in migrations():
            with self.transaction() as connection:
                if self.schema_version() >= version:
                    continue
                for statement in split_statements(script):
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version={version}")


def shown(target: Path | str) -> str:
    """``target`` as messages may name it: a URL loses its password (``user:***@host``)."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", str(target))


def connect(
    target: Path | str, *, synchronous: str | None = None, handoff: bool = False
) -> Database:
    """The state database ``target`` names: a PostgreSQL URL (``postgresql://...``) opens the
    PostgreSQL backend (psycopg, imported only then), anything else is a SQLite file."""
    if is_postgres_url(target):
        from aictl.store.postgres import PgDatabase

        return PgDatabase(str(target))
    return Database(target, synchronous=synchronous, handoff=handoff)


def schema_of(connection: sqlite3.Connection) -> str:
    """The schema as SQL text, objects sorted by name: what a test compares with schema.sql."""
    rows = connection.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
        " ORDER BY type DESC, name"
    )
    return "\n\n".join(f"{row[0]};" for row in rows) + "\n"


if __name__ == "__main__":  # python -m aictl.store.db > aictl/store/schema.sql
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        database = Database(Path(folder) / "schema.db")
        sys.stdout.write(schema_of(database.connection))
        database.close()
